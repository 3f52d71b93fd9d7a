// constructor: the library sets up its state in a constructor; the fix relies on that state.
static int ready;

__attribute__((constructor)) static void set_up(void) { ready = 42; }

__attribute__((noipa)) int answer(int x) { return ready == 42 ? x + 1 : -1; }
