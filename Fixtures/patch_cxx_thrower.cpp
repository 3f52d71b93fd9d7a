// The fix for cxx_thrower.cpp: the exception thrower raises now passes through this frame.
extern "C" void thrower(int x);
extern "C" int through_fixed(int x) { thrower(x * 2); return x; }
