"""`agent-comms consume`: the durable consumer into Postgres, with health and metrics over HTTP."""
