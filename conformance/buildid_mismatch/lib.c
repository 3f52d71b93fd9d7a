// buildid_mismatch: built twice from this same source, with two different build-ids.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
