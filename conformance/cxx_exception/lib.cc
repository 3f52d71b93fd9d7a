// cxx_exception: a C++ library whose checked() throws through raise_error() on bad input.
#include <stdexcept>

extern "C" __attribute__((noipa)) void raise_error(const char *what) { throw std::runtime_error(what); }

extern "C" __attribute__((noipa)) int checked(int x) {
    if (x < 0) raise_error("original");
    return x + 1;
}
