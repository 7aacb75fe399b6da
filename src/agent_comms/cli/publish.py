"""`agent-comms publish` (the sidecar) and `agent-comms demo` (what `make run` runs)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from agent_comms import log as logsetup
from agent_comms.cli.options import (
    SIZE_HELP,
    ByteSize,
    common_logging,
    identity_options,
    nats_options,
    nats_settings,
    run_command,
)
from agent_comms.core.errors import AgentCommsError
from agent_comms.settings import PublishSettings, identity_from_values, parse_general_kinds

log = logging.getLogger("agent_comms.cli")


@click.command()
@click.option(
    "--watch-dir",
    envvar="AGENT_COMMS_WATCH_DIR",
    default="/workspace",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory whose top level holds the agent's files (the shared volume).",
)
@click.option(
    "--file",
    "globs",
    multiple=True,
    metavar="GLOB",
    help="File name glob to publish (repeatable); replaces the defaults "
    "'.codex-*-events.jsonl' and '.codex-*-agent.log'.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Take the files as final: publish everything, wait for every ack, exit 0 only if "
    "nothing is pending (1 otherwise). Gives up after --drain-timeout without progress.",
)
@click.option(
    "--general-kinds",
    envvar="AGENT_COMMS_GENERAL_KINDS",
    default="all",
    show_default=True,
    help="Which kinds also go to the general channel: 'all', 'none' or e.g. 'message,error'.",
)
@click.option(
    "--drain-timeout",
    "drain_timeout_s",
    envvar="AGENT_COMMS_DRAIN_TIMEOUT",
    type=float,
    default=25.0,
    show_default=True,
    help="Seconds from SIGTERM to exit; keep it under the pod's grace period (30 s).",
)
@click.option(
    "--max-run-bytes",
    envvar="AGENT_COMMS_MAX_RUN_BYTES",
    type=ByteSize(),
    default="256M",
    show_default=True,
    help=f"Stop publishing live past this many body bytes ({SIZE_HELP}); the backfill stores the rest.",
)
@click.option(
    "--max-line-bytes",
    envvar="AGENT_COMMS_MAX_LINE_BYTES",
    type=ByteSize(),
    default="4M",
    show_default=True,
    help=f"Longer lines are not parsed, only head and tail kept ({SIZE_HELP}).",
)
@click.option(
    "--max-in-flight",
    envvar="AGENT_COMMS_MAX_IN_FLIGHT",
    type=int,
    default=4096,
    show_default=True,
    help="Unacknowledged messages at once; when full, reading pauses (the file is the buffer).",
)
@click.option(
    "--ack-timeout",
    "ack_timeout_s",
    envvar="AGENT_COMMS_ACK_TIMEOUT",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds to wait for a PubAck before re-sending (same Nats-Msg-Id).",
)
@click.option(
    "--retry-max-wait",
    "retry_max_wait_s",
    envvar="AGENT_COMMS_RETRY_MAX_WAIT",
    type=float,
    default=5.0,
    show_default=True,
    help="Cap of the exponential backoff between re-sends, seconds.",
)
@click.option(
    "--poll-interval",
    "poll_interval_s",
    envvar="AGENT_COMMS_POLL_INTERVAL",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between re-scans (a safety net under inotify; the rate when polling).",
)
@click.option(
    "--checkpoint-interval",
    "checkpoint_interval_s",
    envvar="AGENT_COMMS_CHECKPOINT_INTERVAL",
    type=float,
    default=0.2,
    show_default=True,
    help="Seconds between checkpoint writes; bounds what a crash re-sends after the duplicate window.",
)
@click.option(
    "--poll/--no-poll",
    "force_polling",
    envvar="AGENT_COMMS_POLL",
    default=False,
    show_default=True,
    help="Poll instead of inotify (for volumes where inotify events never arrive, e.g. NFS).",
)
@click.option(
    "--metrics-port",
    envvar="AGENT_COMMS_METRICS_PORT",
    type=int,
    default=0,
    show_default=True,
    help="Serve Prometheus /metrics on this port (0: off).",
)
@click.option(
    "--redact-pattern",
    "redact_patterns",
    envvar="AGENT_COMMS_REDACT_PATTERNS",
    multiple=True,
    metavar="REGEX",
    help="Extra secret pattern to mask (repeatable; a group named 'secret' limits "
    "the mask). In the variable, separate patterns with new lines.",
)
@identity_options
@nats_options
@common_logging
@run_command
def publish(**kw: Any) -> None:
    """Tail the agent's files and publish every line to JetStream: the sidecar.

    \b
    Guarantee: every line is published at least once and stored once (Nats-Msg-Id inside the
    stream's duplicate window; the checkpoint beyond it). Each line goes to the run subject
    and, by --general-kinds, to the general subject; every PubAck is checked.

    \b
    On SIGTERM/SIGINT it reads every file to its end, publishes the rest, waits for acks up to
    --drain-timeout, saves checkpoints and exits 0 whatever happened: a sidecar never fails a
    workflow. Lines it could not deliver are logged with counts and left for the backfill.
    """
    # A SIGTERM that arrives while we start (imports, settings) must drain, not kill: remember
    # it now and hand it to the publisher once its loop runs.
    early: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early.append(signal.Signals(signum)))
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.core.codex import make_normalizer
    from agent_comms.publisher.publisher import Publisher

    metrics_port = kw.pop("metrics_port")
    patterns = tuple(p for raw in kw.pop("redact_patterns") for p in str(raw).splitlines() if p.strip())
    identity = identity_from_values(
        workflow_uid=kw.pop("workflow_uid"),
        workflow_name=kw.pop("workflow_name"),
        workflow_namespace=kw.pop("workflow_namespace"),
        step_id=kw.pop("step_id"),
        agent_id=kw.pop("agent_id"),
        run_id=kw.pop("run_id"),
        stage=kw.pop("stage"),
    )
    settings = PublishSettings(
        watch_dir=kw.pop("watch_dir"),
        identity=identity,
        nats=nats_settings(kw, "agent-comms-publisher"),
        globs=tuple(kw.pop("globs")),
        general_kinds=parse_general_kinds(kw.pop("general_kinds")),
        redact_patterns=patterns,
        **kw,
    ).validate()
    try:
        normalizer = make_normalizer(max_line_bytes=settings.max_line_bytes, redact_patterns=patterns)
    except ValueError as exc:
        raise AgentCommsError(f"--redact-pattern: {exc}") from exc
    publisher = Publisher(settings, normalizer)
    if metrics_port:
        from agent_comms.publisher.metrics import serve_metrics

        serve_metrics(publisher, metrics_port)
    summary = asyncio.run(_serve_publisher(publisher, early))
    click.echo(orjson.dumps(summary.to_json()).decode())
    level = logging.INFO if summary.drained else logging.WARNING
    log.log(level, "publisher_stopped", extra={k: v for k, v in summary.to_json().items() if k != "files"})
    if settings.once and not summary.drained:
        sys.exit(1)


async def _serve_publisher(publisher: Any, early: list[signal.Signals]) -> Any:
    from agent_comms.gctune import tune_for_throughput

    tune_for_throughput()
    loop = asyncio.get_running_loop()
    signals = {"count": 0}

    def on_signal(sig: signal.Signals) -> None:
        # SIGTERM: the kubelet stopping the pod (the agent has exited); SIGINT: Ctrl-C.
        signals["count"] += 1
        log.info("signal_received", extra={"signal": sig.name, "count": signals["count"]})
        publisher.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    for sig in early:
        loop.call_soon(on_signal, sig)
    return await publisher.run()


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded servers and the workspace live, wiped first (default: .run/ in the "
    "repository, or a folder under /var/tmp when the repository is under the home directory).",
)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Recorded run to replay (default: examples/codex-run).",
)
@click.option(
    "--rate",
    "lines_per_s",
    type=float,
    default=8.0,
    show_default=True,
    help="Replay speed in lines per second (slow enough to watch on /agents/general).",
)
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="Keep serving the pages after the replay until Ctrl-C.",
)
@click.option(
    "--database-url",
    envvar="DATABASE_URL",
    default=None,
    help="Use this Postgres instead of an embedded one (the demo writes one demo run into it).",
)
@run_command
def demo(
    workdir: Path | None, source: Path | None, lines_per_s: float, database_url: str | None, serve: bool
) -> None:
    """Run the whole path on this machine with real parts (what `make run` does).

    \b
    An embedded nats-server gets the stream and consumer from nats/stream.yaml and
    jangar-consumer/consumer.yaml; Postgres is embedded unless DATABASE_URL is set; the real
    consumer ingests while the real publisher tails a workspace into which a recorded Codex run
    is replayed line by line; then the publisher drains on SIGTERM and the backfill runs.
    """
    from agent_comms.demo import EXAMPLE_DIR, run_demo

    sys.exit(run_demo(workdir, source or EXAMPLE_DIR, lines_per_s, database_url, serve=serve))
