// hotpatch-agent: the daemon. Its wiring arrives with the agent issue; this target builds so that
// packaging and CI already cover it.
import Engine
print("hotpatch-agent: not yet wired; see README.md")
