# pagecross: the entry of the replaced function crosses a page boundary (the 5-byte jump is
# written into two pages).
run() { library_case libpagecross.so --replace crossing=crossing_fixed; }
