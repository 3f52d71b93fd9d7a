// The benchmark plugin's fix: plugin_length clamped to 64, as the sleeper's parse_length fix.
int plugin_length_fixed(int n) { return n > 64 ? 64 : n; }
