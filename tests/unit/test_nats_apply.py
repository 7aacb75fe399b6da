"""NACK YAML to nats-py configs (pure: no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js.api import AckPolicy, DeliverPolicy, RetentionPolicy, StorageType

from agent_comms.nats_apply import (
    Overrides,
    SpecError,
    consumer_config,
    load_resources,
    parse_go_duration,
    parse_size,
    stream_config,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("168h", 604800.0),
        ("2m", 120.0),
        ("30s", 30.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("7d", 604800.0),
        ("0", 0.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text, field="f") == seconds


@pytest.mark.parametrize("text", ["7 days", "5", "h", "1x"])
def test_bad_durations_name_the_field(text: str) -> None:
    with pytest.raises(SpecError, match=r"Stream\.spec\.maxAge"):
        parse_go_duration(text, field="Stream.spec.maxAge")


def test_sizes() -> None:
    assert parse_size(8589934592, field="f") == 8 * 1024**3
    assert parse_size("8Gi", field="f") == 8 * 1024**3
    assert parse_size("512M", field="f") == 512 * 1024**2
    assert parse_size(-1, field="f") == -1


def test_repo_yaml_maps_to_the_contract_resources() -> None:
    resources = load_resources([REPO / "jangar-consumer" / "consumer.yaml", REPO / "nats" / "stream.yaml"])
    assert [r.kind for r in resources] == ["Stream", "Consumer"], "streams are applied first"
    stream = stream_config(resources[0])
    assert stream.name == "agent-comms" and stream.subjects == ["argo.workflow.>"]
    assert (stream.retention, stream.storage, stream.max_age) == (
        RetentionPolicy.LIMITS,
        StorageType.FILE,
        604800.0,
    )
    assert stream.num_replicas == 3 and stream.duplicate_window == 120.0
    name, consumer = consumer_config(resources[1])
    assert name == "agent-comms" and consumer.durable_name == "jangar-agent-comms"
    assert consumer.ack_policy == AckPolicy.EXPLICIT and consumer.deliver_policy == DeliverPolicy.ALL
    assert consumer.deliver_subject is None and consumer.max_ack_pending == 20000


def test_overrides_for_a_single_server() -> None:
    stream_doc, consumer_doc = load_resources(
        [REPO / "nats" / "stream.yaml", REPO / "jangar-consumer" / "consumer.yaml"]
    )
    overrides = Overrides(replicas=1, duplicate_window_s=2.0, ack_wait_s=3.0, max_deliver=4)
    stream = stream_config(stream_doc, overrides)
    _, consumer = consumer_config(consumer_doc, overrides)
    assert (stream.num_replicas, stream.duplicate_window) == (1, 2.0)
    assert (consumer.ack_wait, consumer.max_deliver) == (3.0, 4)


def test_an_unsupported_field_is_an_error_naming_it(tmp_path: Path) -> None:
    doc = tmp_path / "c.yaml"
    doc.write_text(
        "apiVersion: jetstream.nats.io/v1beta2\nkind: Consumer\nmetadata: {name: c}\n"
        "spec: {durableName: c, streamName: s, maxRequestBatch: 10}\n"
    )
    (resource,) = load_resources([doc])
    with pytest.raises(SpecError, match=r"Consumer\.spec\.maxRequestBatch is not supported"):
        consumer_config(resource)


def test_a_bad_enum_value_lists_the_choices(tmp_path: Path) -> None:
    doc = tmp_path / "s.yaml"
    doc.write_text(
        "apiVersion: jetstream.nats.io/v1beta2\nkind: Stream\nmetadata: {name: s}\nspec: {storage: disk}\n"
    )
    (resource,) = load_resources([doc])
    with pytest.raises(SpecError, match=r"Stream\.spec\.storage='disk' is not one of file, memory"):
        stream_config(resource)


def test_files_without_stream_or_consumer_are_refused(tmp_path: Path) -> None:
    doc = tmp_path / "values.yaml"
    doc.write_text("config: {jetstream: {enabled: true}}\n")
    with pytest.raises(SpecError, match="no Stream or Consumer"):
        load_resources([doc])
