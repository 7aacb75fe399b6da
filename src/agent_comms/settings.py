"""Typed settings, built once by the CLI and passed explicitly; nothing else reads the environment.

Validation messages name the flag or variable, the value and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from agent_comms.core.errors import ConfigError
from agent_comms.core.message import KINDS, RunIdentity
from agent_comms.core.subjects import DEFAULT_PREFIX

DEFAULT_NATS_URL: Final = "nats://127.0.0.1:4222"


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """How to reach NATS: every option of the one `nats.connect()` in bus.py."""

    url: str = DEFAULT_NATS_URL
    creds_file: Path | None = None
    user: str | None = None
    password: str | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    subject_prefix: str = DEFAULT_PREFIX
    connect_timeout_s: float = 2.0
    reconnect_wait_s: float = 0.5
    name: str = "agent-comms"

    def validate(self) -> NatsSettings:
        for var, path in (
            ("NATS_CREDS_FILE", self.creds_file),
            ("NATS_TLS_CA_FILE", self.tls_ca_file),
            ("NATS_TLS_CERT_FILE", self.tls_cert_file),
            ("NATS_TLS_KEY_FILE", self.tls_key_file),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(
                    f"{var}={path}: no such file; mount the secret that holds it or unset {var}"
                )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError(
                "NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together: set both for mutual TLS, or neither"
            )
        if self.creds_file is not None and self.user is not None:
            raise ConfigError("NATS_CREDS_FILE and NATS_USER are alternatives: set one of them")
        return self


def parse_general_kinds(value: str) -> frozenset[str]:
    """`all` (every kind), `none`, or a comma-separated list of kinds."""
    text = value.strip().lower()
    if text in ("", "all", "*"):
        return frozenset(KINDS)
    if text == "none":
        return frozenset()
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ConfigError(
            f"--general-kinds={value!r}: unknown kind(s) {', '.join(unknown)}; "
            f"use 'all', 'none' or a comma-separated list of {', '.join(KINDS)}"
        )
    return frozenset(kinds)


def format_general_kinds(kinds: frozenset[str]) -> str:
    if kinds == frozenset(KINDS):
        return "all"
    return ",".join(k for k in KINDS if k in kinds) or "none"


def identity_from_values(
    *,
    workflow_uid: str | None,
    workflow_name: str | None,
    workflow_namespace: str | None,
    step_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    stage: str | None,
) -> RunIdentity:
    """A RunIdentity from flag/env values; the four required values must be present."""
    missing = [
        var
        for var, v in (
            ("WORKFLOW_UID", workflow_uid),
            ("WORKFLOW_NAME", workflow_name),
            ("WORKFLOW_NAMESPACE", workflow_namespace),
            ("STEP_ID", step_id),
        )
        if not v
    ]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not set: the run's identity is required "
            "(in Argo: {{workflow.uid}}, {{workflow.name}}, {{workflow.namespace}}, {{pod.name}}); "
            "pass the flags or set the variables"
        )
    assert workflow_uid and workflow_name and workflow_namespace and step_id
    return RunIdentity(
        workflow_uid=workflow_uid,
        workflow_name=workflow_name,
        workflow_namespace=workflow_namespace,
        step_id=step_id,
        agent_id=agent_id or None,
        run_id=run_id or None,
        stage=stage or None,
    )


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """Everything `agent-comms publish` does; units in names."""

    watch_dir: Path
    identity: RunIdentity
    nats: NatsSettings = field(default_factory=NatsSettings)
    globs: tuple[str, ...] = ()
    general_kinds: frozenset[str] = frozenset(KINDS)
    once: bool = False
    drain_timeout_s: float = 25.0
    max_run_bytes: int = 256 * 1024 * 1024
    max_line_bytes: int = 4 * 1024 * 1024
    max_in_flight: int = 4096
    ack_timeout_s: float = 5.0
    retry_initial_wait_s: float = 0.1
    retry_max_wait_s: float = 5.0
    poll_interval_s: float = 1.0
    force_polling: bool = False
    checkpoint_interval_s: float = 0.2
    read_chunk_bytes: int = 256 * 1024
    redact_patterns: tuple[str, ...] = ()

    def validate(self) -> PublishSettings:
        self.nats.validate()
        checks = (
            ("--drain-timeout", self.drain_timeout_s > 0),
            ("--max-run-bytes", self.max_run_bytes > 0),
            ("--max-in-flight", self.max_in_flight >= 2),
            ("--ack-timeout", self.ack_timeout_s > 0),
            ("--poll-interval", self.poll_interval_s > 0),
        )
        for flag, ok in checks:
            if not ok:
                raise ConfigError(f"{flag} must be positive (--max-in-flight at least 2)")
        if self.max_line_bytes < 64 * 1024:
            raise ConfigError(f"--max-line-bytes={self.max_line_bytes}: use at least 65536 (the content cap)")
        return self


def parse_duration(value: str, *, name: str) -> float:
    """Seconds from `60d`, `12h`, `30m`, `45s`, `500ms` or a plain number of seconds.

    `name` is the flag or variable, for the error message.
    """
    text = value.strip().lower()
    units = (("ms", 0.001), ("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))
    suffix, factor = next(((u, f) for u, f in units if text.endswith(u)), ("", 1.0))
    try:
        seconds = float(text[: len(text) - len(suffix)]) * factor
    except ValueError:
        raise ConfigError(
            f"{name}={value!r}: not a duration; use a number with d, h, m, s or ms (e.g. 60d, 30s)"
        ) from None
    if seconds < 0:
        raise ConfigError(f"{name}={value!r}: a duration cannot be negative")
    return seconds


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How to reach Postgres (`DATABASE_URL`) and how hard to try."""

    database_url: str
    connect_timeout_s: float = 5.0
    pool_max_size: int = 4
    retry_initial_wait_s: float = 0.2
    retry_max_wait_s: float = 10.0

    def validate(self) -> StoreSettings:
        if not self.database_url.strip():
            raise ConfigError(
                "DATABASE_URL is not set: pass --database-url or set DATABASE_URL "
                "(e.g. postgresql://user:password@host:5432/jangar)"
            )
        if self.connect_timeout_s <= 0 or self.retry_initial_wait_s <= 0 or self.retry_max_wait_s <= 0:
            raise ConfigError("--db-connect-timeout and the --db-retry waits must be positive")
        if self.pool_max_size < 2:
            raise ConfigError(f"--db-pool-size={self.pool_max_size}: use at least 2 (probes and reads)")
        return self


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The web half of `agent-comms consume`: JSON API, SSE and pages (docs/web.md)."""

    api_token: str | None = None
    """AGENT_COMMS_API_TOKEN: when set, the API and pages require it (bearer or login cookie)."""
    heartbeat_s: float = 15.0
    """Seconds between SSE comment lines, under the idle timeout of proxies (nginx: 60 s)."""
    history_rows: int = 500
    """Rows an SSE stream sends first when it has no Last-Event-ID (the newest, oldest first)."""
    catchup_rows: int = 1000
    """Rows per Postgres read while a stream catches up from its cursor."""
    client_queue_rows: int = 2000
    """Live rows held for one SSE client; past that the client re-reads from Postgres by cursor."""
    stale_after_s: float = 600.0
    """A run without a final status that has been silent this long is shown as stale."""
    poll_interval_s: float = 5.0
    """Seconds between reads by cursor when no NOTIFY arrived (a lost notification costs this)."""
    batch_interval_s: float = 0.05
    """Least seconds between two reads of the live fan-out: under steady traffic, what commits in
    between goes to every client in one write (fewer, larger writes; adds at most this delay)."""
    sse_compression: bool = True
    """Compress SSE streams (Content-Encoding: deflate) for clients that accept it."""

    def validate(self) -> WebSettings:
        checks = (
            ("--sse-heartbeat", self.heartbeat_s > 0),
            ("--sse-history", self.history_rows >= 0),
            ("--sse-client-queue", self.client_queue_rows >= 10),
            ("--stale-after", self.stale_after_s > 0),
            ("--live-poll-interval", self.poll_interval_s > 0),
            ("--live-batch-interval", 0 <= self.batch_interval_s <= 1),
        )
        for flag, ok in checks:
            if not ok:
                raise ConfigError(
                    f"{flag} is out of range (intervals positive, the batch interval 0-1 s, "
                    "history >= 0, client queue >= 10)"
                )
        if self.api_token is not None and len(self.api_token) < 16:
            raise ConfigError(
                "AGENT_COMMS_API_TOKEN is shorter than 16 characters; use a long random value "
                "(e.g. `openssl rand -hex 32`) or unset it"
            )
        return self


@dataclass(frozen=True, slots=True)
class ConsumeSettings:
    """Everything `agent-comms consume` does; units in names.

    The stream and durable names are DESIGN.md's; the consumer binds to them and never creates them.
    """

    store: StoreSettings
    nats: NatsSettings = field(default_factory=NatsSettings)
    stream: str = "agent-comms"
    durable: str = "jangar-agent-comms"
    batch_size: int = 1000
    pull_expires_s: float = 5.0
    max_body_bytes: int = 1024 * 1024
    http_host: str | None = None
    """None: 0.0.0.0 when an API token is set, else 127.0.0.1 only (see `bind_host`)."""
    http_port: int = 8080
    ingest: bool = True
    """False (`--no-ingest`): serve the web half alone, without NATS."""
    web: WebSettings = field(default_factory=WebSettings)
    bind_retry_s: float = 5.0
    probe_interval_s: float = 5.0
    drain_timeout_s: float = 20.0
    exit_after_commits: int = 0
    """Test hook: SIGKILL this process right after the Nth commit, before its acks (0: never)."""

    def validate(self) -> ConsumeSettings:
        if self.ingest:
            self.nats.validate()
        self.store.validate()
        self.web.validate()
        checks = (
            ("--batch-size", self.batch_size >= 1),
            ("--pull-expires", self.pull_expires_s >= 0.1),
            ("--max-body-bytes", self.max_body_bytes >= 1024),
            ("--bind-retry", self.bind_retry_s > 0),
            ("--probe-interval", self.probe_interval_s > 0),
            ("--drain-timeout", self.drain_timeout_s > 0),
        )
        for flag, ok in checks:
            if not ok:
                raise ConfigError(
                    f"{flag} is out of range (batch size >= 1, pull expiry >= 0.1 s, body limit >= 1024, "
                    "intervals positive)"
                )
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(f"--http-port={self.http_port}: not a TCP port")
        return self

    @property
    def bind_host(self) -> str:
        """Where the HTTP server listens: `--http-host` if given; otherwise everywhere when the
        API is protected by a token, and only this machine when it is not."""
        if self.http_host:
            return self.http_host
        return "0.0.0.0" if self.web.api_token else "127.0.0.1"

    @property
    def is_open_to_localhost_only(self) -> bool:
        """True when no token protects the API and the address was chosen for it (loopback)."""
        return not self.http_host and not self.web.api_token


IDENTITY_FIELDS: Final = (
    "workflow_uid",
    "workflow_name",
    "workflow_namespace",
    "step_id",
    "agent_id",
    "run_id",
    "stage",
)


def layered_identity(
    flags: dict[str, str | None], recorded: RunIdentity | None, env: dict[str, str | None]
) -> RunIdentity:
    """The backfill's identity: each field from the flags, else identity.json, else the environment.

    identity.json wins over the environment because the environment of an exit-handler pod is
    its own (its STEP_ID is not the agent pod's), while identity.json was written beside the files.
    """
    recorded_values: dict[str, str | None] = dict(recorded.to_json()) if recorded else {}
    chosen = {name: flags.get(name) or recorded_values.get(name) or env.get(name) for name in IDENTITY_FIELDS}
    ident = identity_from_values(**chosen)
    if recorded is not None and not flags.get("runtime"):
        ident = replace(ident, runtime=recorded.runtime)
    return ident
