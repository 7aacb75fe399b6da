"""`agent-comms`: flags and environment become Settings; each command calls one async entry point.

Every flag that has an environment variable shows it in `--help`; the contract's variables
(NATS_URL, WORKFLOW_UID, ...) are the ones DESIGN.md names.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from agent_comms import __version__
from agent_comms import log as logsetup
from agent_comms.core.errors import AgentCommsError
from agent_comms.core.subjects import DEFAULT_PREFIX, validate_prefix
from agent_comms.settings import (
    DEFAULT_NATS_URL,
    NatsSettings,
    PublishSettings,
    identity_from_values,
    parse_general_kinds,
)

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("agent_comms.cli")

SIZE_HELP = "bytes; accepts K, M, G suffixes (binary)"


class ByteSize(click.ParamType):
    """`64K`, `256M`, `1G` or a plain number of bytes."""

    name = "size"
    _UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        unit = text[-1:] if text[-1:] in "KMG" else ""
        try:
            return int(float(text[: len(text) - len(unit)]) * self._UNITS[unit])
        except ValueError:
            self.fail(f"{value!r} is not a size (examples: 65536, 64K, 256M, 1G)", param, ctx)


def common_logging(f: F) -> F:
    f = click.option(
        "--log-level",
        envvar="AGENT_COMMS_LOG_LEVEL",
        default="info",
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    )(f)
    f = click.option(
        "--log-format",
        envvar="AGENT_COMMS_LOG_FORMAT",
        default="json",
        show_default=True,
        type=click.Choice(["json", "text"]),
        help="json: one object per line, for log pipelines; text: for a terminal.",
    )(f)
    return f


def nats_options(f: F) -> F:
    opts = [
        click.option("--nats-url", envvar="NATS_URL", default=DEFAULT_NATS_URL, show_default=True,
                     help="Server URL(s), comma-separated; tls:// for TLS."),
        click.option("--nats-creds-file", envvar="NATS_CREDS_FILE", type=click.Path(path_type=Path),
                     help="NATS credentials file (JWT + nkey seed), e.g. a mounted secret."),
        click.option("--nats-user", envvar="NATS_USER", help="User for user/password auth."),
        click.option("--nats-password", envvar="NATS_PASSWORD", help="Password for user/password auth."),
        click.option("--nats-tls-ca-file", envvar="NATS_TLS_CA_FILE", type=click.Path(path_type=Path),
                     help="CA bundle that signed the server certificate."),
        click.option("--nats-tls-cert-file", envvar="NATS_TLS_CERT_FILE", type=click.Path(path_type=Path),
                     help="Client certificate for mutual TLS (with --nats-tls-key-file)."),
        click.option("--nats-tls-key-file", envvar="NATS_TLS_KEY_FILE", type=click.Path(path_type=Path),
                     help="Client key for mutual TLS."),
        click.option("--subject-prefix", envvar="NATS_SUBJECT_PREFIX", default=DEFAULT_PREFIX, show_default=True,
                     help="Subject prefix; the stream must cover '<prefix>.>'."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def nats_settings(kw: dict[str, Any], name: str) -> NatsSettings:
    try:
        prefix = validate_prefix(kw.pop("subject_prefix"))
    except ValueError as exc:
        raise AgentCommsError(str(exc)) from exc
    return NatsSettings(
        url=kw.pop("nats_url"),
        creds_file=kw.pop("nats_creds_file"),
        user=kw.pop("nats_user"),
        password=kw.pop("nats_password"),
        tls_ca_file=kw.pop("nats_tls_ca_file"),
        tls_cert_file=kw.pop("nats_tls_cert_file"),
        tls_key_file=kw.pop("nats_tls_key_file"),
        subject_prefix=prefix,
        name=name,
    )


def identity_options(f: F) -> F:
    opts = [
        click.option("--workflow-uid", envvar="WORKFLOW_UID", help="{{workflow.uid}}: the run's key."),
        click.option("--workflow-name", envvar="WORKFLOW_NAME", help="{{workflow.name}}."),
        click.option("--workflow-namespace", envvar="WORKFLOW_NAMESPACE", help="{{workflow.namespace}}."),
        click.option("--step-id", envvar="STEP_ID", help="{{pod.name}} of the pod that writes the files."),
        click.option("--agent-id", envvar="AGENT_ID", help="Agent name; default: the <stage> in each file name."),
        click.option("--run-id", envvar="RUN_ID", help="Jangar run id (optional)."),
        click.option("--stage", envvar="STAGE", help="Agent stage; default: the <stage> in each file name."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def run_command(f: F) -> F:
    """Turn AgentCommsError into a one-line error and exit code 2; keep tracebacks for bugs."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except AgentCommsError as exc:
            click.echo(f"agent-comms: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agent-comms")
def main() -> None:
    """Watch coding agents work: every line of a Codex run on NATS JetStream and in Postgres.

    \b
    publish   sidecar: tail a run's files, publish every line to JetStream
    Run 'agent-comms COMMAND --help' for what each command guarantees and every knob.
    """


@main.command()
@click.option("--watch-dir", envvar="AGENT_COMMS_WATCH_DIR", default="/workspace", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory whose top level holds the agent's files (the shared volume).")
@click.option("--file", "globs", multiple=True, metavar="GLOB",
              help="File name glob to publish (repeatable); replaces the defaults "
                   "'.codex-*-events.jsonl' and '.codex-*-agent.log'.")
@click.option("--once", is_flag=True,
              help="Take the files as final: publish everything, wait for every ack, exit 0 only if "
                   "nothing is pending (1 otherwise). Gives up after --drain-timeout without progress.")
@click.option("--general-kinds", envvar="AGENT_COMMS_GENERAL_KINDS", default="all", show_default=True,
              help="Which kinds also go to the general channel: 'all', 'none' or e.g. 'message,error'.")
@click.option("--drain-timeout", "drain_timeout_s", envvar="AGENT_COMMS_DRAIN_TIMEOUT", type=float, default=25.0,
              show_default=True, help="Seconds from SIGTERM to exit; keep it under the pod's grace period (30 s).")
@click.option("--max-run-bytes", envvar="AGENT_COMMS_MAX_RUN_BYTES", type=ByteSize(), default="256M",
              show_default=True, help=f"Stop publishing live past this many body bytes ({SIZE_HELP}); "
                                      "the backfill stores the rest.")
@click.option("--max-line-bytes", envvar="AGENT_COMMS_MAX_LINE_BYTES", type=ByteSize(), default="4M",
              show_default=True, help=f"Longer lines are not parsed, only head and tail kept ({SIZE_HELP}).")
@click.option("--max-in-flight", envvar="AGENT_COMMS_MAX_IN_FLIGHT", type=int, default=4096, show_default=True,
              help="Unacknowledged messages at once; when full, reading pauses (the file is the buffer).")
@click.option("--ack-timeout", "ack_timeout_s", envvar="AGENT_COMMS_ACK_TIMEOUT", type=float, default=5.0,
              show_default=True, help="Seconds to wait for a PubAck before re-sending (same Nats-Msg-Id).")
@click.option("--retry-max-wait", "retry_max_wait_s", envvar="AGENT_COMMS_RETRY_MAX_WAIT", type=float,
              default=5.0, show_default=True, help="Cap of the exponential backoff between re-sends, seconds.")
@click.option("--poll-interval", "poll_interval_s", envvar="AGENT_COMMS_POLL_INTERVAL", type=float, default=1.0,
              show_default=True, help="Seconds between re-scans (a safety net under inotify; the rate when polling).")
@click.option("--checkpoint-interval", "checkpoint_interval_s", envvar="AGENT_COMMS_CHECKPOINT_INTERVAL", type=float,
              default=0.2, show_default=True,
              help="Seconds between checkpoint writes; bounds what a crash re-sends after the duplicate window.")
@click.option("--poll/--no-poll", "force_polling", envvar="AGENT_COMMS_POLL", default=False, show_default=True,
              help="Poll instead of inotify (for volumes where inotify events never arrive, e.g. NFS).")
@click.option("--metrics-port", envvar="AGENT_COMMS_METRICS_PORT", type=int, default=0, show_default=True,
              help="Serve Prometheus /metrics on this port (0: off).")
@click.option("--redact-pattern", "redact_patterns", envvar="AGENT_COMMS_REDACT_PATTERNS", multiple=True,
              metavar="REGEX", help="Extra secret pattern to mask (repeatable; a group named 'secret' limits "
                                    "the mask). In the variable, separate patterns with new lines.")
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
    summary = asyncio.run(_serve_publisher(publisher))
    click.echo(orjson.dumps(summary.to_json()).decode())
    level = logging.INFO if summary.drained else logging.WARNING
    log.log(level, "publisher_stopped", extra={k: v for k, v in summary.to_json().items() if k != "files"})
    if settings.once and not summary.drained:
        sys.exit(1)


async def _serve_publisher(publisher: Any) -> Any:
    loop = asyncio.get_running_loop()
    signals = {"count": 0}

    def on_signal(sig: signal.Signals) -> None:
        # SIGTERM: the kubelet stopping the pod (the agent has exited); SIGINT: Ctrl-C.
        signals["count"] += 1
        log.info("signal_received", extra={"signal": sig.name, "count": signals["count"]})
        publisher.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return await publisher.run()



@main.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path(".run"),
              show_default=True, help="Where the embedded servers and the workspace live (wiped first).")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Recorded run to replay (default: examples/codex-run).")
@click.option("--rate", "lines_per_s", type=float, default=60.0, show_default=True,
              help="Replay speed in lines per second.")
@run_command
def demo(workdir: Path, source: Path | None, lines_per_s: float) -> None:
    """Run the live path on this machine with embedded servers (what `make run` does)."""
    from agent_comms.demo import EXAMPLE_DIR, run_demo

    sys.exit(run_demo(workdir, source or EXAMPLE_DIR, lines_per_s))


# -- Postgres, ingest and local JetStream resources (issue 3) -------------------------------------


def database_options(f: F) -> F:
    opts = [
        click.option("--database-url", envvar="DATABASE_URL", default="", show_default=False,
                     help="Postgres connection string, e.g. postgresql://user:pass@host:5432/jangar."),
        click.option("--db-connect-timeout", "db_connect_timeout_s", envvar="AGENT_COMMS_DB_CONNECT_TIMEOUT",
                     type=float, default=5.0, show_default=True, help="Seconds to wait for one connection."),
        click.option("--db-retry-max-wait", "db_retry_max_wait_s", envvar="AGENT_COMMS_DB_RETRY_MAX_WAIT",
                     type=float, default=10.0, show_default=True,
                     help="Cap of the exponential backoff while Postgres is unreachable, seconds."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def store_settings(kw: dict[str, Any]) -> Any:
    from agent_comms.settings import StoreSettings

    return StoreSettings(
        database_url=kw.pop("database_url"),
        connect_timeout_s=kw.pop("db_connect_timeout_s"),
        retry_max_wait_s=kw.pop("db_retry_max_wait_s"),
    ).validate()


def _echo_json(doc: Any) -> None:
    click.echo(orjson.dumps(doc, default=str).decode())


@main.command()
@click.option("--wait", "wait_s", envvar="AGENT_COMMS_MIGRATE_WAIT", type=float, default=30.0,
              show_default=True, help="Seconds to retry while Postgres is unreachable (e.g. starting).")
@database_options
@common_logging
@run_command
def migrate(wait_s: float, **kw: Any) -> None:
    """Apply the Postgres migrations (schema workflow_comms) and print the versions applied.

    \b
    Idempotent, and safe when several processes run it at once (an advisory lock serializes
    them; the later ones find nothing to do). The consumer and the backfill also migrate on start.
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.store import connect_with_retry
    from agent_comms.store import migrate as apply_migrations

    settings = store_settings(kw)

    async def go() -> list[int]:
        conn = await connect_with_retry(settings, within_s=wait_s)
        try:
            return await apply_migrations(conn)
        finally:
            await conn.close()

    _echo_json({"applied": asyncio.run(go())})


@main.command()
@click.option("--older-than", required=True, envvar="AGENT_COMMS_RETENTION",
              help="Delete messages older than this (by message time), e.g. 60d; and dead letters "
                   "last seen before it.")
@click.option("--batch-rows", type=int, default=10_000, show_default=True,
              help="Rows deleted per transaction (short locks beside a running consumer).")
@database_options
@common_logging
@run_command
def prune(older_than: str, batch_rows: int, **kw: Any) -> None:
    """Delete rows past the retention (Postgres keeps 30 to 90 days; JetStream keeps 7)."""
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from datetime import timedelta

    from agent_comms.settings import parse_duration
    from agent_comms.store import connect_with_retry
    from agent_comms.store import prune as prune_rows

    age = timedelta(seconds=parse_duration(older_than, name="--older-than"))
    if age < timedelta(days=1):
        raise AgentCommsError(
            f"--older-than={older_than}: less than a day would delete live runs; use e.g. 60d"
        )
    settings = store_settings(kw)

    async def go() -> Any:
        conn = await connect_with_retry(settings, within_s=settings.connect_timeout_s * 2, autocommit=True)
        try:
            return await prune_rows(conn, age, batch_rows=batch_rows)
        finally:
            await conn.close()

    _echo_json(asyncio.run(go()).to_json())


@main.group("dead-letters")
def dead_letters() -> None:
    """Messages that could not be stored: list them, replay them after a fix."""


@dead_letters.command("list")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many, oldest first.")
@click.option("--all", "include_replayed", is_flag=True, help="Include letters already replayed.")
@database_options
@common_logging
@run_command
def dead_letters_list(limit: int, include_replayed: bool, **kw: Any) -> None:
    """One JSON object per letter: id, subject, stream_seq, reason, size, attempts, a preview."""
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.store import connect_with_retry, list_dead_letters

    settings = store_settings(kw)

    async def go() -> list[Any]:
        conn = await connect_with_retry(settings, within_s=settings.connect_timeout_s * 2)
        try:
            return await list_dead_letters(conn, include_replayed=include_replayed, limit=limit)
        finally:
            await conn.close()

    for letter in asyncio.run(go()):
        _echo_json(letter.to_json())


@dead_letters.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="Replay this letter (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every letter not yet replayed.")
@click.option("--max-body-bytes", envvar="AGENT_COMMS_MAX_BODY_BYTES", type=ByteSize(), default="1M",
              show_default=True, help=f"Bodies above this stay dead letters ({SIZE_HELP}).")
@database_options
@common_logging
@run_command
def dead_letters_replay(ids: tuple[int, ...], replay_all: bool, max_body_bytes: int, **kw: Any) -> None:
    """Re-judge stored letters with the code that runs now; store the good ones, mark them replayed.

    Prints a JSON summary: replayed, inserted, present (already stored), still_invalid (with reasons).
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.store import connect_with_retry, replay_dead_letters

    if bool(ids) == replay_all:
        raise AgentCommsError("dead-letters replay: pass --id N (repeatable) or --all")
    settings = store_settings(kw)

    async def go() -> Any:
        conn = await connect_with_retry(settings, within_s=settings.connect_timeout_s * 2)
        try:
            chosen = None if replay_all else ids
            return await replay_dead_letters(conn, ids=chosen, max_body_bytes=max_body_bytes)
        finally:
            await conn.close()

    _echo_json(asyncio.run(go()).to_json())


@main.command()
@click.option("--http-host", envvar="AGENT_COMMS_HTTP_HOST", default="0.0.0.0", show_default=True,
              help="Address of /healthz, /readyz and /metrics (and the web UI).")
@click.option("--http-port", envvar="AGENT_COMMS_HTTP_PORT", type=int, default=8080, show_default=True,
              help="Port of the HTTP server, up from the start.")
@click.option("--stream", envvar="AGENT_COMMS_STREAM", default="agent-comms", show_default=True,
              help="The stream the durable consumer belongs to.")
@click.option("--durable", envvar="AGENT_COMMS_DURABLE", default="jangar-agent-comms", show_default=True,
              help="The durable pull consumer to bind (never created or changed by this command).")
@click.option("--batch-size", envvar="AGENT_COMMS_BATCH_SIZE", type=int, default=1000, show_default=True,
              help="Messages per transaction at most; smaller batches commit sooner when traffic is light.")
@click.option("--pull-expires", "pull_expires_s", envvar="AGENT_COMMS_PULL_EXPIRES", type=float, default=5.0,
              show_default=True, help="Seconds a pull request waits on the server for messages.")
@click.option("--max-body-bytes", envvar="AGENT_COMMS_MAX_BODY_BYTES", type=ByteSize(), default="1M",
              show_default=True, help=f"Larger bodies are dead-lettered ({SIZE_HELP}).")
@click.option("--bind-retry", "bind_retry_s", envvar="AGENT_COMMS_BIND_RETRY", type=float, default=5.0,
              show_default=True, help="Seconds between checks for the consumer while it does not exist.")
@click.option("--probe-interval", "probe_interval_s", envvar="AGENT_COMMS_PROBE_INTERVAL", type=float,
              default=5.0, show_default=True, help="Seconds between readiness checks (Postgres, consumer).")
@click.option("--drain-timeout", "drain_timeout_s", envvar="AGENT_COMMS_DRAIN_TIMEOUT", type=float,
              default=20.0, show_default=True,
              help="Seconds from SIGTERM to give up a batch Postgres will not take (it stays unacked and "
                   "is redelivered); keep it under the pod's grace period.")
@click.option("--test-exit-after-commit", "exit_after_commits", type=int, default=0, hidden=True,
              help="Tests only: SIGKILL this process right after the Nth commit, before acking it.")
@database_options
@nats_options
@common_logging
@run_command
def consume(**kw: Any) -> None:
    """Ingest the durable consumer into Postgres and serve /healthz, /readyz, /metrics: jangar-consumer.

    \b
    Guarantee: every message of the stream becomes exactly one row per (message_id, channel):
    acks follow commits, and the unique key absorbs redeliveries and backfilled rows. A message
    that can never be stored goes to the dead-letter table (then acked): see `dead-letters`.
    Postgres down: fetching stops, nothing is lost or dead-lettered, ingest resumes when it is
    back. NATS down: reconnects forever. SIGTERM: commits and acks the batch in hand, exits 0.

    \b
    Binds the durable consumer and never creates it: until it exists /readyz fails and the log
    says to apply jangar-consumer/consumer.yaml (locally: `agent-comms nats apply`).
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.consumer.service import serve_consumer
    from agent_comms.settings import ConsumeSettings

    settings = ConsumeSettings(
        store=store_settings(kw),
        nats=nats_settings(kw, "agent-comms-consumer"),
        **kw,
    ).validate()
    asyncio.run(serve_consumer(settings))


@main.group("nats")
def nats_group() -> None:
    """Local JetStream resources (in Kubernetes, NACK applies the same files)."""


@nats_group.command("apply")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replicas", type=int, default=None, help="Override replicas (1 for a single local server).")
@click.option("--duplicate-window", default=None, help="Override the stream's duplicate window, e.g. 2s.")
@click.option("--ack-wait", default=None, help="Override the consumer's ack wait, e.g. 2s.")
@click.option("--max-deliver", type=int, default=None, help="Override the consumer's max deliver.")
@click.option("--max-bytes", type=ByteSize(), default=None,
              help=f"Override the stream's byte limit (a local disk may be smaller; {SIZE_HELP}).")
@click.option("--connect-wait", "connect_wait_s", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the NATS server.")
@nats_options
@common_logging
@run_command
def nats_apply(files: tuple[Path, ...], connect_wait_s: float, **kw: Any) -> None:
    """Create or update the Stream and Consumer of NACK YAML files (e.g. nats/stream.yaml
    jangar-consumer/consumer.yaml) on the server at NATS_URL; prints one JSON line per resource.

    \b
    Every spec field maps to the JetStream setting NACK would set; a field this command cannot
    map is an error naming it. Locally: --replicas 1 (one server), --duplicate-window 2s.
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.bus import Connection
    from agent_comms.nats_apply import Overrides, apply_resources, load_resources, parse_go_duration

    def duration(flag: str, value: str | None) -> float | None:
        return None if value is None else parse_go_duration(value, field=flag)

    overrides = Overrides(
        replicas=kw.pop("replicas"),
        duplicate_window_s=duration("--duplicate-window", kw.pop("duplicate_window")),
        ack_wait_s=duration("--ack-wait", kw.pop("ack_wait")),
        max_deliver=kw.pop("max_deliver"),
        max_bytes=kw.pop("max_bytes"),
    )
    settings = nats_settings(kw, "agent-comms-nats-apply").validate()
    resources = load_resources(files)

    async def go() -> list[Any]:
        conn = Connection(settings, name=settings.name)
        try:
            async with asyncio.timeout(connect_wait_s):
                await conn.connect()
        except TimeoutError:
            raise AgentCommsError(
                f"NATS_URL={settings.url}: no server answered in {connect_wait_s:g}s; start nats-server "
                "or fix NATS_URL"
            ) from None
        try:
            return await apply_resources(conn, resources, overrides)
        finally:
            await conn.close()

    for applied in asyncio.run(go()):
        _echo_json(applied.to_json())
