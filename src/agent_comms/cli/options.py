"""Shared flags and helpers of the command line: option groups, sizes, error handling."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click
import orjson

from agent_comms.core.errors import AgentCommsError
from agent_comms.core.subjects import DEFAULT_PREFIX, validate_prefix
from agent_comms.settings import DEFAULT_NATS_URL, NatsSettings, StoreSettings

F = TypeVar("F", bound=Callable[..., Any])
SIZE_HELP = "bytes; accepts K, M, G suffixes (binary)"


class ByteSize(click.ParamType[int]):
    """`64K`, `256M`, `1G` or a plain number of bytes."""

    name = "size"
    _UNITS: ClassVar[dict[str, int]] = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

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
        click.option(
            "--nats-url",
            envvar="NATS_URL",
            default=DEFAULT_NATS_URL,
            show_default=True,
            help="Server URL(s), comma-separated; tls:// for TLS.",
        ),
        click.option(
            "--nats-creds-file",
            envvar="NATS_CREDS_FILE",
            type=click.Path(path_type=Path),
            help="NATS credentials file (JWT + nkey seed), e.g. a mounted secret.",
        ),
        click.option("--nats-user", envvar="NATS_USER", help="User for user/password auth."),
        click.option("--nats-password", envvar="NATS_PASSWORD", help="Password for user/password auth."),
        click.option(
            "--nats-tls-ca-file",
            envvar="NATS_TLS_CA_FILE",
            type=click.Path(path_type=Path),
            help="CA bundle that signed the server certificate.",
        ),
        click.option(
            "--nats-tls-cert-file",
            envvar="NATS_TLS_CERT_FILE",
            type=click.Path(path_type=Path),
            help="Client certificate for mutual TLS (with --nats-tls-key-file).",
        ),
        click.option(
            "--nats-tls-key-file",
            envvar="NATS_TLS_KEY_FILE",
            type=click.Path(path_type=Path),
            help="Client key for mutual TLS.",
        ),
        click.option(
            "--subject-prefix",
            envvar="NATS_SUBJECT_PREFIX",
            default=DEFAULT_PREFIX,
            show_default=True,
            help="Subject prefix; the stream must cover '<prefix>.>'.",
        ),
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
        click.option(
            "--agent-id", envvar="AGENT_ID", help="Agent name; default: the <stage> in each file name."
        ),
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


def max_body_option(f: F) -> F:
    """`--max-body-bytes`: `consume` and `dead-letters replay` judge bodies by the same limit."""
    return click.option(
        "--max-body-bytes",
        envvar="AGENT_COMMS_MAX_BODY_BYTES",
        type=ByteSize(),
        default="1M",
        show_default=True,
        help=f"Larger bodies are dead letters: consume dead-letters them, replay leaves them ({SIZE_HELP}).",
    )(f)


def database_options(f: F) -> F:
    opts = [
        click.option(
            "--database-url",
            envvar="DATABASE_URL",
            default="",
            show_default=False,
            help="Postgres connection string, e.g. postgresql://user:pass@host:5432/jangar.",
        ),
        click.option(
            "--db-connect-timeout",
            "db_connect_timeout_s",
            envvar="AGENT_COMMS_DB_CONNECT_TIMEOUT",
            type=float,
            default=5.0,
            show_default=True,
            help="Seconds to wait for one connection.",
        ),
        click.option(
            "--db-retry-max-wait",
            "db_retry_max_wait_s",
            envvar="AGENT_COMMS_DB_RETRY_MAX_WAIT",
            type=float,
            default=10.0,
            show_default=True,
            help="Cap of the exponential backoff while Postgres is unreachable, seconds.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def store_settings(kw: dict[str, Any]) -> StoreSettings:
    return StoreSettings(
        database_url=kw.pop("database_url"),
        connect_timeout_s=kw.pop("db_connect_timeout_s"),
        retry_max_wait_s=kw.pop("db_retry_max_wait_s"),
    ).validate()


def echo_json(doc: Any) -> None:
    click.echo(orjson.dumps(doc, default=str).decode())
