// The fix of one of two_objects_lib.c's builds: FIXED (a_value_fixed, b_value_fixed) adds ADD.
int FIXED(int x) { return x + ADD; }
