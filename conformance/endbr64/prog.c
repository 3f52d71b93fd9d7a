#include "conformance.h"

int answer(int x);
int answer_starts_with_endbr64(void);

int main(void) {
    if (!answer_starts_with_endbr64()) bad("answer() does not start with endbr64: not built with -fcf-protection");
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
}
