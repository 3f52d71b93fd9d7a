// One thread, nearly always blocked in read(0) (restartable: the agent stops and injects into
// exactly this thread). Each read must return the whole line written, never fail with EINTR.
#include <errno.h>
#include <unistd.h>
#include "conformance.h"

int answer(int x);

int main(void) {
    report_value(answer(41), 42, 43);
    for (;;) {
        char line[64];
        ssize_t got = read(0, line, sizeof line);
        if (got < 0) bad("read failed: %s", strerror(errno));
        else if (got != 5 || memcmp(line, "ping\n", 5) != 0) bad("read returned %zd bytes, not \"ping\\n\"", got);
        else report_value(answer(41), 42, 43);
    }
}
