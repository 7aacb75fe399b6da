"""The sidecar: tail a run's files and publish every line to JetStream, once, whatever fails."""
