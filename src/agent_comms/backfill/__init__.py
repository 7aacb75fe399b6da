"""The exit-handler step: insert every line of a run that Postgres does not have yet."""
