"""nats/values.yaml: only keys the chart knows, TLS, monitoring, secrets by reference, and
accounts whose permissions do what nats/README.md says, checked on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ReplayPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from tests.deploy.manifests import REPO_ROOT, go_duration_s, load_yaml, manifest, schemas_dir
from tests.deploy.natsconf import RunningServer, password_variables, run_server

STREAM = "agent-comms"
DURABLE = "jangar-agent-comms"
RUN_SUBJECT = "argo.workflow.agents.codex-impl-x1.0f3c.agent.implementation.message"
GENERAL_SUBJECT = "argo.workflow.general.message"


def values() -> dict[str, Any]:
    return load_yaml(REPO_ROOT / "nats" / "values.yaml")


# --- keys and settings --------------------------------------------------------------------------


def unknown_keys(ours: Any, defaults: Any, path: str = "") -> list[str]:
    """Keys we set that the chart's defaults do not have.

    A default that is an empty map (`merge: {}`, `env: {}`, `resources: {}`, ...) is free-form:
    anything under it is ours to choose. A non-empty default map must contain every key we set,
    recursively; a default map must not be replaced by a scalar, nor a boolean by a non-boolean.
    """
    if isinstance(defaults, dict):
        if not defaults:
            return []
        if not isinstance(ours, dict):
            return [f"{path}: the chart expects a map here, got {ours!r}"]
        problems = []
        for key, value in ours.items():
            where = f"{path}.{key}" if path else key
            if key not in defaults:
                problems.append(f"{where}: not a key of the chart's values")
            else:
                problems += unknown_keys(value, defaults[key], where)
        return problems
    if isinstance(defaults, bool) and not isinstance(ours, bool):
        return [f"{path}: the chart expects true/false, got {ours!r}"]
    return []


def test_every_key_exists_in_the_charts_default_values():
    defaults = load_yaml(schemas_dir() / "nats-helm" / "values.yaml")
    assert unknown_keys(values(), defaults) == []


def test_unknown_keys_are_caught():
    defaults = load_yaml(schemas_dir() / "nats-helm" / "values.yaml")
    typo = {"config": {"jetstream": {"fileStorage": {"enabled": True}}, "merge": {"anything": 1}}}
    assert unknown_keys(typo, defaults) == ["config.jetstream.fileStorage: not a key of the chart's values"]


def test_jetstream_on_file_storage_in_a_cluster_of_three():
    config = values()["config"]
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == 3


def test_clients_and_routes_use_tls_from_cert_manager_secrets():
    v = values()
    for block in (v["config"]["nats"]["tls"], v["config"]["cluster"]["tls"]):
        assert block["enabled"] is True
        assert block["secretName"], "TLS needs the cert-manager Certificate's secret"
    assert v["tlsCA"]["enabled"] is True and v["tlsCA"]["secretName"]


def test_monitoring_feeds_the_prometheus_exporter():
    v = values()
    assert v["config"]["monitor"]["enabled"] is True
    assert v["promExporter"]["enabled"] is True
    assert v["promExporter"]["podMonitor"]["enabled"] is True
    # observability/ uses nats_* names because the chart passes -prefix=nats; overriding the
    # exporter's args would change every name the alerts query.
    for section in ("merge", "patch"):
        assert "args" not in (v["promExporter"].get(section) or {}), "exporter args overridden"


def test_passwords_come_from_a_secret_never_from_values():
    v = values()
    env = v["container"]["env"]
    variables = password_variables(v["config"]["merge"]).values()
    assert len(variables) == 3
    for name in variables:
        assert name in env, f"${name} is used in config.merge but not set in container.env"
        assert set(env[name]) == {"valueFrom"} and "secretKeyRef" in env[name]["valueFrom"], name


def test_no_anonymous_access():
    merge = values()["config"]["merge"]
    assert "no_auth_user" not in merge
    assert "authorization" not in merge


# --- the accounts on a real server ----------------------------------------------------------------


def stream_config(spec: dict[str, Any]) -> StreamConfig:
    """nats/stream.yaml as the server takes it, at one replica (one server here)."""
    handled = {
        "name",
        "description",
        "subjects",
        "retention",
        "storage",
        "maxAge",
        "maxBytes",
        "maxMsgs",
        "discard",
        "maxMsgSize",
        "replicas",
        "duplicateWindow",
    }
    nack_only = {"account", "preventDelete"}
    assert set(spec) <= handled | nack_only, f"unmapped stream fields: {set(spec) - handled - nack_only}"
    return StreamConfig(
        name=spec["name"],
        description=spec["description"],
        subjects=spec["subjects"],
        retention=RetentionPolicy(spec["retention"]),
        storage=StorageType(spec["storage"]),
        max_age=go_duration_s(spec["maxAge"]),
        max_bytes=spec["maxBytes"],
        max_msgs=spec["maxMsgs"],
        discard=DiscardPolicy(spec["discard"]),
        max_msg_size=spec["maxMsgSize"],
        num_replicas=1,
        duplicate_window=go_duration_s(spec["duplicateWindow"]),
    )


def consumer_config(spec: dict[str, Any]) -> ConsumerConfig:
    handled = {
        "durableName",
        "streamName",
        "description",
        "filterSubject",
        "deliverPolicy",
        "ackPolicy",
        "ackWait",
        "maxDeliver",
        "maxAckPending",
        "replayPolicy",
    }
    nack_only = {"account", "preventDelete"}
    assert set(spec) <= handled | nack_only, f"unmapped consumer fields: {set(spec) - handled - nack_only}"
    return ConsumerConfig(
        durable_name=spec["durableName"],
        description=spec["description"],
        filter_subject=spec["filterSubject"],
        deliver_policy=DeliverPolicy(spec["deliverPolicy"]),
        ack_policy=AckPolicy(spec["ackPolicy"]),
        ack_wait=go_duration_s(spec["ackWait"]),
        max_deliver=spec["maxDeliver"],
        max_ack_pending=spec["maxAckPending"],
        replay_policy=ReplayPolicy(spec["replayPolicy"]),
    )


class Errors:
    """Asynchronous server errors (permission violations arrive as -ERR, not as exceptions)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._changed = asyncio.Event()

    async def callback(self, error: Exception) -> None:
        self.seen.append(str(error))
        self._changed.set()

    async def wait_for(self, text: str, timeout_s: float = 5.0) -> str:
        async def found() -> str:
            while True:
                for message in self.seen:
                    if text.lower() in message.lower():
                        return message
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(found(), timeout_s)
        except TimeoutError:
            pytest.fail(f"no server error containing {text!r} within {timeout_s}s; saw {self.seen}")


@asynccontextmanager
async def connect(server: RunningServer, user: str) -> AsyncIterator[tuple[Client, Errors]]:
    errors = Errors()
    nc = await nats.connect(
        server.url,
        user=user,
        password=server.passwords[user],
        error_cb=errors.callback,
        allow_reconnect=False,
        connect_timeout=5,
    )
    try:
        yield nc, errors
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The values' accounts on one server, with the stream and consumer created by `nack`."""
    workdir: Path = tmp_path_factory.mktemp("nats")
    with run_server(values()["config"]["merge"], workdir) as running:

        async def apply() -> None:
            async with connect(running, "nack") as (nc, _):
                js = nc.jetstream()
                await js.add_stream(stream_config(manifest("Stream", STREAM)["spec"]))
                await js.add_consumer(STREAM, consumer_config(manifest("Consumer", DURABLE)["spec"]))

        asyncio.run(apply())
        yield running


async def test_anonymous_connection_is_refused(server: RunningServer):
    async def quiet(error: Exception) -> None:
        pass  # the refusal is asserted below; nats-py would otherwise log it as an error

    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            server.url, allow_reconnect=False, connect_timeout=5, max_reconnect_attempts=0, error_cb=quiet
        )


async def test_server_max_payload_is_the_streams_max_message_size(server: RunningServer):
    async with connect(server, "publisher") as (nc, _):
        assert nc.max_payload == manifest("Stream", STREAM)["spec"]["maxMsgSize"]


async def test_publisher_publishes_and_receives_its_pubacks(server: RunningServer):
    async with connect(server, "publisher") as (nc, _):
        js = nc.jetstream()
        ack = await js.publish(RUN_SUBJECT, b"{}", headers={"Nats-Msg-Id": "uid:.codex-x-events.jsonl:1:ab"})
        assert ack.stream == STREAM and not ack.duplicate
        again = await js.publish(
            RUN_SUBJECT, b"{}", headers={"Nats-Msg-Id": "uid:.codex-x-events.jsonl:1:ab"}
        )
        assert again.duplicate and again.seq == ack.seq
        general = await js.publish(
            GENERAL_SUBJECT, b"{}", headers={"Nats-Msg-Id": "uid:.codex-x-events.jsonl:1:ab:general"}
        )
        assert general.stream == STREAM and not general.duplicate


async def test_publisher_cannot_read_agent_subjects(server: RunningServer):
    async with connect(server, "publisher") as (nc, errors):
        await nc.subscribe("argo.workflow.>")
        await nc.flush()
        await errors.wait_for('Permissions Violation for Subscription to "argo.workflow.>"')


async def test_publisher_cannot_publish_elsewhere_nor_use_the_jetstream_api(server: RunningServer):
    async with connect(server, "publisher") as (nc, errors):
        await nc.publish("other.subject", b"x")
        await nc.publish(f"$JS.API.STREAM.PURGE.{STREAM}", b"")
        await nc.flush()
        await errors.wait_for('Permissions Violation for Publish to "other.subject"')
        await errors.wait_for(f'Permissions Violation for Publish to "$JS.API.STREAM.PURGE.{STREAM}"')


async def test_consumer_fetches_and_acks_through_its_durable(server: RunningServer):
    async with connect(server, "publisher") as (nc, _):
        await nc.jetstream().publish(RUN_SUBJECT, b'{"n": 2}', headers={"Nats-Msg-Id": "consumer-test-2"})
    async with connect(server, "jangar-consumer") as (nc, errors):
        js = nc.jetstream()
        assert (await js.stream_info(STREAM)).config.name == STREAM
        # Binds by stream and durable name: no STREAM.NAMES lookup, no CONSUMER.CREATE.
        sub = await js.pull_subscribe_bind(DURABLE, STREAM)
        received = 0
        while True:
            try:
                batch = await sub.fetch(100, timeout=1)
            except nats.errors.TimeoutError:
                break
            for msg in batch:
                await msg.ack()
                received += 1
        assert received >= 1
        await nc.flush()
        info = await js.consumer_info(STREAM, DURABLE)
        assert info.num_pending == 0 and info.num_ack_pending == 0
        assert errors.seen == []


async def test_consumer_cannot_create_consumers_read_subjects_or_publish(server: RunningServer):
    async with connect(server, "jangar-consumer") as (nc, errors):
        await nc.publish(f"$JS.API.CONSUMER.CREATE.{STREAM}.other", b"{}")
        await nc.publish(RUN_SUBJECT, b"{}")
        await nc.subscribe("argo.workflow.>")
        await nc.flush()
        await errors.wait_for(
            f'Permissions Violation for Publish to "$JS.API.CONSUMER.CREATE.{STREAM}.other"'
        )
        await errors.wait_for(f'Permissions Violation for Publish to "{RUN_SUBJECT}"')
        await errors.wait_for('Permissions Violation for Subscription to "argo.workflow.>"')


async def test_nack_user_manages_jetstream_but_not_agent_subjects(server: RunningServer):
    async with connect(server, "nack") as (nc, errors):
        info = await nc.jetstream().consumer_info(STREAM, DURABLE)
        assert info.config.max_ack_pending == 20000
        await nc.publish(RUN_SUBJECT, b"{}")
        await nc.subscribe("argo.workflow.>")
        await nc.flush()
        await errors.wait_for(f'Permissions Violation for Publish to "{RUN_SUBJECT}"')
        await errors.wait_for('Permissions Violation for Subscription to "argo.workflow.>"')
