// Level 2 (cumulative): a stricter clamp computed with libc (snprintf, atoi) and the victim's
// non-exported helper_scale (reached through a `refs` entry); the banner change is dropped.
#include <stdio.h>
#include <stdlib.h>

extern int helper_scale(int x);

int parse_length_fixed2(int n) {
    char text[16];
    snprintf(text, sizeof text, "%d", helper_scale(16));
    int limit = atoi(text);
    return n > limit ? limit : n;
}
