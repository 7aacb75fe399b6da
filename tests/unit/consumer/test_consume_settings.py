"""Settings of the consumer and the store: defaults from DESIGN.md, errors that name the flag."""

from __future__ import annotations

import pytest

from agent_comms.core.errors import ConfigError
from agent_comms.settings import ConsumeSettings, StoreSettings, parse_duration


def test_defaults_bind_the_contract_names() -> None:
    s = ConsumeSettings(store=StoreSettings("postgresql://db/jangar")).validate()
    assert (s.stream, s.durable, s.http_port) == ("agent-comms", "jangar-agent-comms", 8080)


def test_missing_database_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        StoreSettings("").validate()


def test_out_of_range_values_name_the_flag() -> None:
    with pytest.raises(ConfigError, match="--batch-size"):
        ConsumeSettings(store=StoreSettings("postgresql://db/x"), batch_size=0).validate()
    with pytest.raises(ConfigError, match="--http-port=70000"):
        ConsumeSettings(store=StoreSettings("postgresql://db/x"), http_port=70000).validate()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60d", 5_184_000.0), ("12h", 43_200.0), ("30m", 1800.0), ("45s", 45.0), ("500ms", 0.5), ("7", 7.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, name="--older-than") == seconds


def test_bad_duration_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--older-than='two months'"):
        parse_duration("two months", name="--older-than")
