// The fix throws through its own frame (raise_error is the library's): the unwinder must find
// how to unwind the patch's code to reach the caller's handler.
#include <stdexcept>

extern "C" void raise_error(const char *what);

extern "C" int checked_fixed(int x) {
    if (x < 0) raise_error("fixed");
    return x + 2;
}
