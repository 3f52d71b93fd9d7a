// ref_static: the library's own static (non-exported) data and read-only data, which the fix
// reads and writes through --ref.
static int hits;
static const char greeting[] = "hello";

// Counts a call; the original returns the count.
__attribute__((noipa)) int tick(void) { return ++hits; }

// What the library itself sees in its static data.
int hits_now(void) { return hits; }
const char *greeting_text(void) { return greeting; }
