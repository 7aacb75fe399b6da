from __future__ import annotations

import pytest

from agent_comms.core.subjects import general_subject, run_subject, sanitize_token, validate_prefix


@pytest.mark.parametrize(
    ("raw", "token"),
    [
        ("agents", "agents"),
        ("my.ns", "my_ns"),
        ("a b", "a_b"),
        ("x*>y", "x__y"),
        ("", "_"),
        ("tab\there", "tab_here"),
    ],
)
def test_tokens_never_split_or_wildcard_a_subject(raw: str, token: str) -> None:
    assert sanitize_token(raw) == token


def test_run_subject_has_eight_tokens_and_general_four() -> None:
    run = run_subject("argo.workflow", "general", "wf.v1", "uid-1", "impl", "message")
    assert run == "argo.workflow.general.wf_v1.uid-1.agent.impl.message"
    assert len(run.split(".")) == 8
    assert general_subject("argo.workflow", "message") == "argo.workflow.general.message"
    assert len(general_subject("argo.workflow", "log").split(".")) == 4


@pytest.mark.parametrize("bad", ["", "a..b", "a.>", "a b", "argo.*"])
def test_bad_prefix_is_refused_with_the_variable_named(bad: str) -> None:
    with pytest.raises(ValueError, match="NATS_SUBJECT_PREFIX"):
        validate_prefix(bad)
