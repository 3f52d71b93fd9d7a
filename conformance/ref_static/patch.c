// The fix keeps counting in the library's own `hits` (so hits_now() sees every call) and returns
// the count times 10 plus 5 when it reads the library's read-only `greeting` as "hello".
extern int hits;
extern const char greeting[];

int tick_fixed(void) {
    int hello = greeting[0] == 'h' && greeting[1] == 'e' && greeting[4] == 'o' && greeting[5] == '\0';
    return ++hits * 10 + (hello ? 5 : 0);
}
