// agentctl: the agent's client. Its commands arrive with the agent issue.
import AgentProtocol
print("agentctl: not yet wired; see README.md")
