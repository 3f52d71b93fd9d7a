// Level 1 of the victim's hotpatch: clamp parse_length to 64 and bump the banner.
int parse_length_fixed(int n) { return n > 64 ? 64 : n; }
int banner_version_fixed(void) { return 2; }
