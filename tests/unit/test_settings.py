from __future__ import annotations

from pathlib import Path

import pytest

from agent_comms.core.errors import ConfigError
from agent_comms.core.message import KINDS
from agent_comms.settings import NatsSettings, identity_from_values, parse_general_kinds


def test_general_kinds_policy_parses_all_none_and_lists() -> None:
    assert parse_general_kinds("all") == frozenset(KINDS)
    assert parse_general_kinds("none") == frozenset()
    assert parse_general_kinds("message, error") == {"message", "error"}
    with pytest.raises(ConfigError, match="unknown kind"):
        parse_general_kinds("message,chatter")


def test_missing_identity_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError, match="WORKFLOW_UID, STEP_ID"):
        identity_from_values(
            workflow_uid=None,
            workflow_name="n",
            workflow_namespace="ns",
            step_id="",
            agent_id=None,
            run_id=None,
            stage=None,
        )


def test_missing_creds_file_names_the_variable_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"NATS_CREDS_FILE=.*no such file"):
        NatsSettings(creds_file=tmp_path / "nope.creds").validate()
    cert = tmp_path / "client.crt"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="go together"):
        NatsSettings(tls_cert_file=cert).validate()
