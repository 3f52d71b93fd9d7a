// One of the two libraries two_objects_main.c maps, built twice: as libA (-DFUNCTION=a_value) and
// as libB (-DFUNCTION=b_value), each adding ADD to its argument. Built with -fcf-protection, so the
// function opens with endbr64 (what --tamper-b replaces with an equivalent nop).
__attribute__((noinline)) int FUNCTION(int x) {
    volatile int y = x;
    return y + ADD;
}
