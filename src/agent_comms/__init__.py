"""agent-comms: every line a coding agent writes, live on NATS JetStream and durable in Postgres."""

__version__ = "0.1.0"
