"""`python -m agent_comms` is `agent-comms`."""

from agent_comms.cli import main

main()
