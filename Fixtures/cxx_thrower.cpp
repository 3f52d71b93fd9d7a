// A C++ program whose exceptions pass through `through`, the function a test patches: every 20 ms
// it prints what it caught ("caught N"); an exception the unwinder cannot follow aborts it.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unistd.h>
extern "C" __attribute__((noinline)) void thrower(int x) { if (x > 0) throw std::runtime_error(std::to_string(x)); }
extern "C" __attribute__((noinline)) int through(int x) { thrower(x); return x; }
int main() { setvbuf(stdout, nullptr, _IOLBF, 0); puts("ready");
  for (;;) { try { through(1); puts("no exception"); } catch (const std::exception &e) { printf("caught %s\n", e.what()); } usleep(20000); } }
