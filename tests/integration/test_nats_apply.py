"""`agent-comms nats apply` against a real nats-server, from the repo's own NACK YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from agent_comms.embedded import EmbeddedNats
from tests.support.ingest import CONSUMER_YAML, STREAM_YAML, consumer_state, nats_apply, stream_state


def test_apply_creates_then_updates_stream_and_consumer_with_overrides(bare_nats: EmbeddedNats) -> None:
    first = nats_apply(
        bare_nats.url, STREAM_YAML, CONSUMER_YAML, extra=["--ack-wait", "5s", "--max-deliver", "4"]
    )
    assert [(a["kind"], a["name"], a["action"]) for a in first] == [
        ("Stream", "agent-comms", "created"),
        ("Consumer", "jangar-agent-comms", "created"),
    ]
    stream = stream_state(bare_nats.url)
    assert stream.config.subjects == ["argo.workflow.>"]
    assert (stream.config.num_replicas, stream.config.duplicate_window) == (1, 2.0)
    assert stream.config.max_age == 7 * 24 * 3600 and stream.config.max_msg_size == 1048576
    consumer = consumer_state(bare_nats.url)
    assert (consumer.config.ack_wait, consumer.config.max_deliver) == (5.0, 4)
    assert consumer.config.max_ack_pending == 20000 and consumer.config.deliver_subject is None

    second = nats_apply(bare_nats.url, STREAM_YAML, CONSUMER_YAML, extra=["--ack-wait", "7s"])
    assert [a["action"] for a in second] == ["updated", "updated"]
    consumer = consumer_state(bare_nats.url)
    assert (consumer.config.ack_wait, consumer.config.max_deliver) == (7.0, 10), (
        "the file's value without override"
    )


def run_apply(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "agent_comms", "nats", "apply", *args]
    return subprocess.run(cmd, env={**os.environ, "NATS_URL": url}, capture_output=True, timeout=60)


def test_unsupported_field_is_refused_before_touching_the_server(
    bare_nats: EmbeddedNats, tmp_path: Path
) -> None:
    bad = tmp_path / "consumer.yaml"
    bad.write_text(CONSUMER_YAML.read_text().replace("  replayPolicy: instant", "  maxRequestBatch: 100"))
    done = run_apply(bare_nats.url, str(STREAM_YAML), str(bad), "--replicas", "1", "--max-bytes", "1G")
    assert done.returncode == 2
    assert b"Consumer.spec.maxRequestBatch is not supported" in done.stderr
    with pytest.raises(NotFoundError):
        stream_state(bare_nats.url)  # every document is converted before the first call


def test_server_refusal_names_the_resource_and_the_fix(bare_nats: EmbeddedNats) -> None:
    # A single server cannot hold three replicas: the file's production value, without --replicas 1.
    done = run_apply(bare_nats.url, str(STREAM_YAML), "--max-bytes", "1G")
    assert done.returncode == 2
    assert b"Stream agent-comms" in done.stderr and b"the server refused it" in done.stderr


def test_unreachable_server_is_a_one_line_error() -> None:
    done = run_apply("nats://127.0.0.1:1", str(STREAM_YAML), "--connect-wait", "0.5")
    assert done.returncode == 2
    assert b"no server answered" in done.stderr
