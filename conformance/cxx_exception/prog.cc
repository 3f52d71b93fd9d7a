// Calls checked(41) and checked(-1) every 10 ms; the exception thrown for -1 is caught here, past
// the (maybe patched) checked() frame. Both results must agree on the state.
#include <stdexcept>
#include <string>
#include "conformance.h"

extern "C" int checked(int x);

int main() {
    for (;;) {
        int value = checked(41);
        std::string what = "nothing";
        try {
            checked(-1);
        } catch (const std::runtime_error &error) {
            what = error.what();
        }
        if (value == 42 && what == "original") report("UNPATCHED");
        else if (value == 43 && what == "fixed") report("PATCHED");
        else bad("checked(41) returned %d and checked(-1) threw \"%s\"", value, what.c_str());
        sleep_ms(10);
    }
}
