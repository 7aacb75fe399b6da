"""Reading stream sequence and pending count from a JetStream reply subject."""

from __future__ import annotations

from agent_comms.consumer.metadata import AckMetadata, parse_ack_subject


def test_v1_reply_subject() -> None:
    meta = parse_ack_subject("$JS.ACK.agent-comms.jangar-agent-comms.2.1041.1007.1700000000000000000.12")
    assert meta == AckMetadata("agent-comms", "jangar-agent-comms", 2, 1041, 1007, 1700000000000000000, 12)


def test_v2_reply_subject_with_domain_account_and_token() -> None:
    meta = parse_ack_subject(
        "$JS.ACK.hub.ACCHASH.agent-comms.jangar-agent-comms.1.5.4.1700000000000000000.0.xyz"
    )
    assert meta is not None and (meta.stream, meta.stream_seq, meta.pending) == ("agent-comms", 5, 0)


def test_other_subjects_are_not_metadata() -> None:
    assert parse_ack_subject("_INBOX.abc") is None
    assert parse_ack_subject("$JS.ACK.s.c.x.1.1.1.1") is None
    assert parse_ack_subject("$JS.ACK.s.c.1.1.1.1") is None
