// levels: one function, replaced by three cumulative levels in turn.
__attribute__((noipa)) int level(int x) { return x > 1000000 ? -1 : 0; }
