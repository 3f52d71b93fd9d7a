// The fix counts in the library's static local, reached by its symbol-table name (--ref counter.0).
extern int counter __asm__("counter.0");

int next_ticket_fixed(void) { return ++counter + 1000000; }
