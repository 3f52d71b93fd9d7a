// The fix keeps counting in the library's own `hits` (so hits_now() sees every call) and returns
// the count times 10 (computed by the library's static scaled()) plus 5 when it reads the library's read-only `greeting` as "hello".
extern int hits;
extern const char greeting[];
extern int scaled(int count);

int tick_fixed(void) {
    int hello = greeting[0] == 'h' && greeting[1] == 'e' && greeting[4] == 'o' && greeting[5] == '\0';
    return scaled(++hits) + (hello ? 5 : 0);
}
