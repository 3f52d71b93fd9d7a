// hotpatch-pack: the publisher's tool. Its commands arrive with the channel issue.
import Engine
print("hotpatch-pack: not yet wired; see README.md")
