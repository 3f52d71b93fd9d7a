// hotpatch-pack: the publisher's tool. Wiring only; each subcommand lives in its own file.
HotpatchPack.main()
