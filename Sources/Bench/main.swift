// hotpatch-bench: see HotpatchBench.swift and docs/PERFORMANCE.md.
HotpatchBench.main()
