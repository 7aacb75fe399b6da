"""The NACK Stream and Consumer carry DESIGN.md's names and values."""

from __future__ import annotations

from tests.deploy.manifests import REPO_ROOT, go_duration_s, load_yaml, manifest, size_bytes

GIB = 1024**3


def stream() -> dict:
    return manifest("Stream", "agent-comms")["spec"]


def consumer() -> dict:
    return manifest("Consumer", "jangar-agent-comms")["spec"]


def test_stream_is_the_contracts_stream():
    spec = stream()
    assert spec["name"] == "agent-comms"
    assert spec["subjects"] == ["argo.workflow.>"]
    assert spec["retention"] == "limits"
    assert spec["storage"] == "file"
    assert spec["discard"] == "old"
    assert spec["replicas"] == 3


def test_stream_keeps_seven_days_within_five_to_ten_gib():
    spec = stream()
    assert go_duration_s(spec["maxAge"]) == 7 * 24 * 3600
    assert 5 * GIB <= spec["maxBytes"] <= 10 * GIB


def test_stream_has_a_duplicate_window():
    assert 0 < go_duration_s(stream()["duplicateWindow"]) <= 10 * 60


def test_stream_max_message_size_equals_server_max_payload():
    values = load_yaml(REPO_ROOT / "nats" / "values.yaml")
    max_payload = values["config"]["merge"]["max_payload"]
    assert max_payload.startswith("<<") and max_payload.endswith(">>"), "max_payload must render unquoted"
    assert stream()["maxMsgSize"] == size_bytes(max_payload.strip("<> ")) == 1024 * 1024


def test_stream_fits_each_servers_file_store():
    values = load_yaml(REPO_ROOT / "nats" / "values.yaml")
    file_store = values["config"]["jetstream"]["fileStore"]
    assert stream()["maxBytes"] < size_bytes(file_store["maxSize"]) < size_bytes(file_store["pvc"]["size"])
    assert values["config"]["cluster"]["replicas"] >= stream()["replicas"]


def test_consumer_is_the_contracts_durable_pull_consumer():
    spec = consumer()
    assert spec["durableName"] == "jangar-agent-comms"
    assert spec["streamName"] == "agent-comms"
    assert "deliverSubject" not in spec, "a deliverSubject would make it a push consumer"
    assert spec["ackPolicy"] == "explicit"
    assert spec["deliverPolicy"] == "all"
    assert spec["maxAckPending"] == 20000
    assert spec["filterSubject"] == "argo.workflow.>"
    assert go_duration_s(spec["ackWait"]) == 30


def test_consumer_max_deliver_is_bounded():
    assert 1 < consumer()["maxDeliver"] <= 20


def test_stream_and_consumer_live_in_the_nack_account():
    account = manifest("Account", "agent-comms")["spec"]
    assert stream()["account"] == consumer()["account"] == account["name"]
    # NACK reads the password from a Secret; no credential is written in a manifest.
    assert set(account["user"]) == {"secret", "user", "password"}
    assert account["user"]["secret"]["name"]
