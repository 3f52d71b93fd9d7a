// multi_object: the library half of a fix that touches a program and its library.
__attribute__((noipa)) int library_part(int x) { return x > 1000000 ? -1 : x + 1; }
