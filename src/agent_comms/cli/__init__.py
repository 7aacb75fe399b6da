"""`agent-comms`: flags and environment become Settings; each command calls one async entry point.

Every flag that has an environment variable shows it in `--help`; the contract's variables
(NATS_URL, WORKFLOW_UID, ...) are the ones DESIGN.md names.
"""

from __future__ import annotations

import click

from agent_comms import __version__
from agent_comms.cli.backfill import backfill
from agent_comms.cli.consume import consume, nats_group
from agent_comms.cli.publish import demo, publish
from agent_comms.cli.store import dead_letters, migrate, prune


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agent-comms")
def main() -> None:
    """Watch coding agents work: every line of a Codex run on NATS JetStream and in Postgres.

    \b
    publish       sidecar: tail a run's files, publish every line to JetStream
    backfill      exit handler: insert whatever Postgres is missing from a run's files
    consume       jangar-consumer: ingest the durable consumer into Postgres, serve HTTP
    migrate       apply the Postgres migrations
    prune         delete rows past the retention
    dead-letters  list or replay messages that could not be stored
    nats apply    create the stream and consumer from the NACK YAML (local use)
    demo          the live path on this machine with embedded servers (make run)

    \b
    Run 'agent-comms COMMAND --help' for what each command guarantees and every knob.
    """


for command in (publish, backfill, consume, migrate, prune, dead_letters, nats_group, demo):
    main.add_command(command)
