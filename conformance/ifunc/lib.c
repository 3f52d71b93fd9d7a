// ifunc: greet() builds "hello, NAME" by hand; its fix calls libc's IFUNC string functions.
__attribute__((noipa)) int greet(char *out, int size, const char *name) {
    const char *prefix = "hello, ";
    int length = 0;
    for (const char *c = prefix; *c != '\0' && length < size - 1; c++) out[length++] = *c;
    for (const char *c = name; *c != '\0' && length < size - 1; c++) out[length++] = *c;
    out[length] = '\0';
    return length;
}
