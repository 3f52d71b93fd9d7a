// ref_static: the library's own static (non-exported) function, data and read-only data, which
// the fix calls, reads and writes through --ref.
static int hits;
static const char greeting[] = "hello";

// A static function of the library (kept, though nothing here calls it, for the fix to call).
__attribute__((noipa, used)) static int scaled(int count) { return count > 1000000 ? -1 : count * 10; }

// Counts a call; the original returns the count.
__attribute__((noipa)) int tick(void) { return ++hits; }

// What the library itself sees in its static data.
int hits_now(void) { return hits; }
const char *greeting_text(void) { return greeting; }
