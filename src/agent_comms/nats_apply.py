"""`agent-comms nats apply FILE...`: the NACK Stream and Consumer YAML, applied directly.

In Kubernetes NACK turns nats/stream.yaml and jangar-consumer/consumer.yaml into JetStream
resources; locally (make run, tests) this module does the same from the same files, so the
resources the consumer binds to are the ones production gets. Named overrides adapt them to a
single local server (replicas, duplicate window, ack wait, max deliver, max bytes).

Every spec field maps to one nats-py StreamConfig/ConsumerConfig field. A field we cannot map
is an error naming it: silently dropping a setting would make local differ from production.
NACK's connection fields (servers, account, creds, tls, ...) say how NACK connects, not what
the resource is, and are ignored; `preventUpdate: true` is honoured.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import yaml
from nats.js import api
from nats.js.errors import APIError, NotFoundError

from agent_comms.bus import Connection
from agent_comms.core.errors import AgentCommsError

log = logging.getLogger(__name__)

API_GROUP: Final = "jetstream.nats.io/"

# How NACK connects and what it does on delete: not part of the JetStream resource.
CONTROLLER_FIELDS: Final = frozenset(
    ("account", "creds", "nkey", "servers", "tls", "tlsFirst", "jsDomain", "preventDelete", "preventUpdate")
)

_GO_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_SIZE: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?|iB)?$", re.IGNORECASE)
_SIZE_UNITS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class SpecError(AgentCommsError):
    """A Stream or Consumer document that cannot be applied as written."""


def parse_go_duration(value: object, *, field: str) -> float:
    """Seconds from a Go duration (`168h`, `2m`, `1h30m`, `500ms`, `0`), also accepting `7d`."""
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise SpecError(f"{field}={value!r} is not a duration; use Go's form, e.g. 168h, 2m, 30s, 500ms")
    return total


def parse_size(value: object, *, field: str) -> int:
    """Bytes from an integer or `8Gi`, `512M`, `1GiB` (binary units); -1 stays -1 (unlimited)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise SpecError(f"{field}={value!r} is not a size; use bytes or a K/M/G/T suffix, e.g. 8Gi")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


@dataclass(frozen=True, slots=True)
class Overrides:
    """Named changes for a single local server; None leaves the file's value."""

    replicas: int | None = None
    duplicate_window_s: float | None = None
    ack_wait_s: float | None = None
    max_deliver: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    name: str
    path: Path
    spec: dict[str, Any]
    prevent_update: bool


# spec field -> (config field, converter). Converters get (value, "Kind.field") for messages.
Converter = Callable[[Any, str], Any]


def _same(value: Any, _: str) -> Any:
    return value


def _enum(enum: type[Any], **aliases: str) -> Converter:
    def convert(value: Any, field: str) -> Any:
        text = aliases.get(str(value), str(value))
        try:
            return enum(text)
        except ValueError:
            choices = ", ".join([*aliases, *(e.value for e in enum if e.value not in aliases.values())])
            raise SpecError(f"{field}={value!r} is not one of {choices}") from None

    return convert


def _duration(value: Any, field: str) -> float:
    return parse_go_duration(value, field=field)


def _size(value: Any, field: str) -> int:
    return parse_size(value, field=field)


def _durations(value: Any, field: str) -> list[float]:
    return [parse_go_duration(v, field=field) for v in value]


def _time(value: Any, field: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise SpecError(f"{field}={value!r} is not an RFC 3339 time") from None


def _placement(value: Any, field: str) -> api.Placement:
    unknown = set(value) - {"cluster", "tags"}
    if unknown:
        raise SpecError(f"{field}.{sorted(unknown)[0]} is not supported by agent-comms nats apply")
    return api.Placement(cluster=value.get("cluster"), tags=value.get("tags"))


STREAM_FIELDS: Final[dict[str, tuple[str, Converter]]] = {
    "name": ("name", _same),
    "description": ("description", _same),
    "subjects": ("subjects", _same),
    "retention": ("retention", _enum(api.RetentionPolicy)),
    "maxConsumers": ("max_consumers", _same),
    "maxMsgs": ("max_msgs", _same),
    "maxBytes": ("max_bytes", _size),
    "discard": ("discard", _enum(api.DiscardPolicy)),
    "discardPerSubject": ("discard_new_per_subject", _same),
    "maxAge": ("max_age", _duration),
    "maxMsgsPerSubject": ("max_msgs_per_subject", _same),
    "maxMsgSize": ("max_msg_size", _size),
    "storage": ("storage", _enum(api.StorageType)),
    "replicas": ("num_replicas", _same),
    "noAck": ("no_ack", _same),
    "duplicateWindow": ("duplicate_window", _duration),
    "placement": ("placement", _placement),
    "sealed": ("sealed", _same),
    "denyDelete": ("deny_delete", _same),
    "denyPurge": ("deny_purge", _same),
    "allowRollup": ("allow_rollup_hdrs", _same),
    "compression": ("compression", _enum(api.StoreCompression, **{"": "none"})),
    "firstSequence": ("first_seq", _same),
    "allowDirect": ("allow_direct", _same),
    "mirrorDirect": ("mirror_direct", _same),
    "allowMsgTtl": ("allow_msg_ttl", _same),
    "subjectDeleteMarkerTtl": ("subject_delete_marker_ttl", _duration),
    "allowMsgCounter": ("allow_msg_counter", _same),
    "allowAtomicPublish": ("allow_atomic", _same),
    "allowMsgSchedules": ("allow_msg_schedules", _same),
    "persistMode": ("persist_mode", _enum(api.PersistMode)),
    "metadata": ("metadata", _same),
}

CONSUMER_FIELDS: Final[dict[str, tuple[str, Converter]]] = {
    "durableName": ("durable_name", _same),
    "description": ("description", _same),
    "deliverPolicy": (
        "deliver_policy",
        _enum(
            api.DeliverPolicy,
            byStartSequence="by_start_sequence",
            byStartTime="by_start_time",
            lastPerSubject="last_per_subject",
        ),
    ),
    "optStartSeq": ("opt_start_seq", _same),
    "optStartTime": ("opt_start_time", _time),
    "deliverSubject": ("deliver_subject", _same),
    "ackPolicy": ("ack_policy", _enum(api.AckPolicy)),
    "ackWait": ("ack_wait", _duration),
    "maxDeliver": ("max_deliver", _same),
    "backoff": ("backoff", _durations),
    "filterSubject": ("filter_subject", _same),
    "filterSubjects": ("filter_subjects", _same),
    "replayPolicy": ("replay_policy", _enum(api.ReplayPolicy)),
    "sampleFreq": ("sample_freq", _same),
    "maxWaiting": ("max_waiting", _same),
    "rateLimitBps": ("rate_limit_bps", _same),
    "maxAckPending": ("max_ack_pending", _same),
    "deliverGroup": ("deliver_group", _same),
    "flowControl": ("flow_control", _same),
    "headersOnly": ("headers_only", _same),
    "heartbeatInterval": ("idle_heartbeat", _duration),
    "inactiveThreshold": ("inactive_threshold", _duration),
    "replicas": ("num_replicas", _same),
    "memStorage": ("mem_storage", _same),
    "metadata": ("metadata", _same),
    "pauseUntil": ("pause_until", _same),
}


def _convert(
    kind: str, spec: dict[str, Any], fields: dict[str, tuple[str, Converter]], skip: set[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in CONTROLLER_FIELDS or key in skip:
            continue
        if key not in fields:
            raise SpecError(
                f"{kind}.spec.{key} is not supported by agent-comms nats apply (nats-py has no such "
                "setting); remove it from the file or apply it with NACK"
            )
        if value is None:
            continue
        target, convert = fields[key]
        out[target] = convert(value, f"{kind}.spec.{key}")
    return out


def stream_config(resource: Resource, overrides: Overrides = Overrides()) -> api.StreamConfig:
    """The nats-py StreamConfig of a Stream document, with the overrides applied."""
    values = _convert("Stream", resource.spec, STREAM_FIELDS, set())
    values.setdefault("name", resource.name)
    if overrides.replicas is not None:
        values["num_replicas"] = overrides.replicas
    if overrides.duplicate_window_s is not None:
        values["duplicate_window"] = overrides.duplicate_window_s
    if overrides.max_bytes is not None:
        values["max_bytes"] = overrides.max_bytes
    return api.StreamConfig(**values)


def consumer_config(resource: Resource, overrides: Overrides = Overrides()) -> tuple[str, api.ConsumerConfig]:
    """(stream name, ConsumerConfig) of a Consumer document, with the overrides applied."""
    stream = resource.spec.get("streamName")
    if not stream:
        raise SpecError(f"Consumer {resource.name} in {resource.path}: spec.streamName is required")
    values = _convert("Consumer", resource.spec, CONSUMER_FIELDS, {"streamName"})
    values.setdefault("durable_name", resource.name)
    # The name makes nats-py use CONSUMER.CREATE, which creates or updates in one call.
    values["name"] = values["durable_name"]
    if overrides.ack_wait_s is not None:
        values["ack_wait"] = overrides.ack_wait_s
    if overrides.max_deliver is not None:
        values["max_deliver"] = overrides.max_deliver
    if overrides.replicas is not None and values.get("num_replicas"):
        values["num_replicas"] = overrides.replicas
    return str(stream), api.ConsumerConfig(**values)


def load_resources(paths: Sequence[Path]) -> list[Resource]:
    """Every Stream and Consumer document in the files, streams first; other kinds are skipped."""
    found: list[Resource] = []
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except OSError as exc:
            raise AgentCommsError(f"{path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from exc
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            kind, version = doc.get("kind"), str(doc.get("apiVersion", ""))
            if kind not in ("Stream", "Consumer") or not version.startswith(API_GROUP):
                log.info("resource_skipped", extra={"path": str(path), "kind": kind, "apiVersion": version})
                continue
            spec = doc.get("spec")
            if not isinstance(spec, dict):
                raise SpecError(f"{kind} in {path}: spec is missing")
            name = spec.get("name" if kind == "Stream" else "durableName") or (doc.get("metadata") or {}).get(
                "name"
            )
            if not name:
                raise SpecError(f"{kind} in {path}: no spec name and no metadata.name")
            found.append(Resource(str(kind), str(name), path, spec, bool(spec.get("preventUpdate"))))
    if not found:
        raise SpecError(f"no Stream or Consumer ({API_GROUP}v1beta2) in {', '.join(map(str, paths))}")
    return sorted(found, key=lambda r: r.kind != "Stream")


def stream_from_file(path: Path, overrides: Overrides = Overrides()) -> api.StreamConfig:
    """The StreamConfig of the one Stream in a NACK YAML file (e.g. nats/stream.yaml)."""
    streams = [r for r in load_resources([path]) if r.kind == "Stream"]
    if len(streams) != 1:
        raise SpecError(f"{path}: expected one Stream, found {len(streams)}")
    return stream_config(streams[0], overrides)


@dataclass(frozen=True, slots=True)
class Applied:
    kind: str
    name: str
    action: str
    path: Path

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "action": self.action, "file": str(self.path)}

    def log_fields(self) -> dict[str, str]:
        # `name` is a LogRecord attribute: logging refuses it as an extra field.
        return {"kind": self.kind, "resource": self.name, "action": self.action, "file": str(self.path)}


async def apply_resources(
    conn: Connection, resources: Sequence[Resource], overrides: Overrides
) -> list[Applied]:
    """Create or update each resource on the connected server, streams before consumers.

    Every document is converted before the first call, so a bad field changes nothing.
    """
    streams = [(r, stream_config(r, overrides)) for r in resources if r.kind == "Stream"]
    consumers = [(r, *consumer_config(r, overrides)) for r in resources if r.kind == "Consumer"]
    js = conn.nc.jetstream()
    done: list[Applied] = []
    for res, config in streams:
        try:
            exists = await _exists(js.stream_info(res.name))
            if exists and res.prevent_update:
                action = "kept (preventUpdate)"
            elif exists:
                await js.update_stream(config)
                action = "updated"
            else:
                await js.add_stream(config)
                action = "created"
        except APIError as exc:
            raise _refused(res, exc) from exc
        done.append(Applied(res.kind, res.name, action, res.path))
        log.info("nats_resource_applied", extra=done[-1].log_fields())
    for res, stream, cconfig in consumers:
        try:
            exists = await _exists(js.consumer_info(stream, res.name))
            if exists and res.prevent_update:
                action = "kept (preventUpdate)"
            else:
                await js.add_consumer(stream, cconfig)
                action = "updated" if exists else "created"
        except APIError as exc:
            raise _refused(res, exc) from exc
        done.append(Applied(res.kind, res.name, action, res.path))
        log.info("nats_resource_applied", extra=done[-1].log_fields())
    return done


async def _exists(lookup: Any) -> bool:
    try:
        await lookup
    except NotFoundError:
        return False
    return True


def _refused(res: Resource, exc: APIError) -> AgentCommsError:
    return AgentCommsError(
        f"{res.kind} {res.name} ({res.path}): the server refused it: {exc.description} "
        f"(code {exc.code}, err_code {exc.err_code}); fix the file or the overrides"
    )


def describe_overrides(overrides: Overrides) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}


__all__ = [
    "Applied",
    "Overrides",
    "Resource",
    "SpecError",
    "apply_resources",
    "consumer_config",
    "describe_overrides",
    "load_resources",
    "parse_go_duration",
    "parse_size",
    "stream_config",
]
