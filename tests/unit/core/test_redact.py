from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent_comms.core import redact
from agent_comms.core.redact import Redactor
from tests.unit.core.codex_support import SECRET_TEXTS, item, normalize_event

GH = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2  # 40 characters after the prefix is fine too
GH_PAT = "github_pat_11ABCDEFG0" + "x" * 10 + "_" + "Q1w2E3r4T5y6U7i8O9p0" * 3
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GCP_KEY = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
OPENAI = "sk-proj-Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0n"
OPENAI_CLASSIC = "sk-" + "A1b2C3d4E5f6G7h8I9j0" * 2 + "K1l2M3n4"
ANTHROPIC = "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe" + "-AbCd"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {GH} here", "token [REDACTED:github-token] here"),
        (f"pat={GH_PAT}", "pat=[REDACTED:github-token]"),
        (f"id {AWS_ID}.", "id [REDACTED:aws-access-key-id]."),
        ("temp ASIAY34FZKBOKMUTVV7A", "temp [REDACTED:aws-access-key-id]"),
        (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key = [REDACTED:aws-secret-access-key]"),
        (
            f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
            "export AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-access-key]",
        ),
        (f'"SecretAccessKey": "{AWS_SECRET}",', '"SecretAccessKey": "[REDACTED:aws-secret-access-key]",'),
        (f"key={GCP_KEY}&q=1", "key=[REDACTED:gcp-api-key]&q=1"),
        (f"SLACK_BOT={SLACK}", "SLACK_BOT=[REDACTED:slack-token]"),
        (
            "curl -X POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXX -d @m.json",
            "curl -X POST https://hooks.slack.com/services/[REDACTED:slack-webhook] -d @m.json",
        ),
        (f"OPENAI_API_KEY: {OPENAI}", "OPENAI_API_KEY: [REDACTED:openai-key]"),
        (f"key {OPENAI_CLASSIC}", "key [REDACTED:openai-key]"),
        (f"x-api-key: {ANTHROPIC}", "x-api-key: [REDACTED:anthropic-key]"),
        (f"cookie session={JWT};", "cookie session=[REDACTED:jwt];"),
        ("Authorization: Bearer abc123def456", "Authorization: Bearer [REDACTED:authorization]"),
        (
            'curl -H "authorization: token 0123456789abcdef"',
            'curl -H "authorization: token [REDACTED:authorization]"',
        ),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED:authorization]"),
        ('{"Authorization": "Bearer abc123def456"}', '{"Authorization": "Bearer [REDACTED:authorization]"}'),
        (
            "postgres://app:s3cr3t-Pa55@db.internal:5432/app",
            "postgres://app:[REDACTED:url-password]@db.internal:5432/app",
        ),
        ("redis://:hunter22@cache:6379/0", "redis://:[REDACTED:url-password]@cache:6379/0"),
        (f"{PEM}\nafter", "[REDACTED:private-key]\nafter"),
        (
            '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n"}',
            '{"type": "service_account", "private_key": "[REDACTED:private-key]"}',
        ),
        ('{"password": "correct horse battery"}', '{"password": "[REDACTED:secret]"}'),
        ("DB_PASSWORD=hunter22 ./run", "DB_PASSWORD=[REDACTED:secret] ./run"),
        ("mysql --password=hunter22 -u root", "mysql --password=[REDACTED:secret] -u root"),
    ],
)
def test_each_secret_shape_is_masked_with_its_kind(text: str, expected: str) -> None:
    assert Redactor().redact(text) == (expected, 1)


def test_a_pem_block_cut_after_its_begin_line_is_still_masked() -> None:
    cut = PEM[:100]  # the BEGIN line and part of the body, as when a line was cut
    assert Redactor().redact(f"key: {cut}") == ("key: [REDACTED:private-key]", 1)


def test_the_end_of_a_pem_block_without_its_begin_line_is_masked_with_its_body() -> None:
    tail = PEM[120:]  # the tail of a cut line: part of the body, then the END line
    # The line break in front of the body goes with it, as any base64 line before END would.
    assert Redactor().redact(f"…]…\n{tail}\nafter") == ("…]…[REDACTED:private-key]\nafter", 1)
    escaped = '"...\\nMIIEowIBAAKCAQ==\\n-----END PRIVATE KEY-----\\n"'
    assert Redactor().redact(escaped) == ('"...[REDACTED:private-key]\\n"', 1)


def test_an_encrypted_pem_block_is_masked_whole() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n"
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----"
    )
    assert Redactor().redact(pem) == ("[REDACTED:private-key]", 1)


@pytest.mark.parametrize(
    "text",
    [
        "The token is refreshed every hour; see docs/auth.md for the password policy.",
        "commit 3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a (HEAD -> main)",
        "request id 123e4567-e89b-12d3-a456-426614174000 finished",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
        "task-sk-1 risk-assessment-framework-2024 disk-cleanup-job-controller-manager-1",
        "sk-learn-compatible-estimator-pipeline",
        "/usr/local/lib/python3.11/site-packages/agent_comms/core/redact.py",
        "password= ; PASSWORD= ; --password= ; GITHUB_TOKEN=$GITHUB_TOKEN ; TOKEN=<your token>",
        "https://github.com/openai/codex/pull/4177 and http://localhost:8080/path@v2",
        "ssh://git@github.com:22/org/repo.git and git@github.com:org/repo.git",
        "Authorization: Bearer $TOKEN and Authorization: required",
        "MAX_TOKENS=4096 max_tokens=4096 tokens: 12000",
        "AKIA is a prefix; AIza too; xoxb- alone; eyJ alone",
        "if line.startswith('-----BEGIN CERTIFICATE-----'):",
        '{"input_tokens": 24763, "token": "hello", "passwords_checked": 3}',
        "ghp_short gho_ github_pat_",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact(text) == (text, 0)


def test_text_without_secret_comes_back_as_the_same_object() -> None:
    text = "nothing to see here, move along " * 10
    assert Redactor().redact(text)[0] is text


def test_several_secrets_are_all_counted() -> None:
    text, n = Redactor().redact(f"{GH} and {AWS_ID} and https://u:pw@h/")
    assert n == 3
    assert GH not in text and AWS_ID not in text and "pw@" not in text


def test_redacting_masked_text_again_changes_nothing() -> None:
    once, _ = Redactor().redact(f"{GH} {JWT} Authorization: Bearer abcdef123 {PEM} {OPENAI}")
    assert Redactor().redact(once) == (once, 0)


def test_redact_obj_masks_values_and_leaves_keys() -> None:
    obj = {GH: "key is a token", "nested": [{"out": f"got {AWS_ID}"}, 5, None], "n": 1}
    out, n = Redactor().redact_obj(obj)
    assert n == 1
    assert out == {
        GH: "key is a token",
        "nested": [{"out": "got [REDACTED:aws-access-key-id]"}, 5, None],
        "n": 1,
    }
    assert obj["nested"][0]["out"] == f"got {AWS_ID}"  # the input is not modified


def test_redact_obj_returns_the_same_object_when_nothing_is_secret() -> None:
    obj: dict[str, Any] = {"a": ["x" * 50, {"b": "plain text here"}], "c": 1.5}
    out, n = Redactor().redact_obj(obj)
    assert out is obj and n == 0


def test_redact_obj_masks_string_members_whose_name_says_secret() -> None:
    out, n = Redactor().redact_obj(
        {"client_secret": "abc", "Authorization": "Bearer x", "password": "", "token": "t"}
    )
    assert out == {
        "client_secret": "[REDACTED:secret]",
        "Authorization": "[REDACTED:authorization]",
        "password": "",
        "token": "t",
    }
    assert n == 2


def test_extra_pattern_masks_the_whole_match() -> None:
    r = Redactor([r"ACME-[0-9]{6}"])
    assert r.redact("license ACME-123456 ok") == ("license [REDACTED:custom] ok", 1)


def test_extra_pattern_with_a_secret_group_masks_only_that_group() -> None:
    r = Redactor([r"session=(?P<secret>[a-f0-9]{8})"])
    assert r.redact("cookie session=deadbeef; path=/") == ("cookie session=[REDACTED:custom]; path=/", 1)


def test_extra_patterns_add_to_the_builtin_shapes() -> None:
    r = Redactor([r"internal-[0-9]+"])
    assert r.redact(f"internal-42 {GH}") == ("[REDACTED:custom] [REDACTED:github-token]", 2)


def test_extra_pattern_matching_empty_text_masks_nothing() -> None:
    assert Redactor([r"x*"]).redact("abc") == ("abc", 0)


def test_invalid_extra_pattern_raises_value_error_naming_the_pattern_and_the_error() -> None:
    with pytest.raises(
        ValueError, match=r"invalid redaction pattern '\(unclosed': missing \), unterminated subpattern"
    ):
        Redactor(["ok", "(unclosed"])


SHAPES = [GH, AWS_ID, GCP_KEY, SLACK, OPENAI, ANTHROPIC, JWT, "s3cr3t-Pa55"]


@pytest.mark.parametrize("secret", SHAPES)
def test_secrets_are_masked_in_content_tool_and_attrs_of_a_normalized_line(secret: str) -> None:
    text = secret if secret != "s3cr3t-Pa55" else f"postgres://app:{secret}@db/app"
    event = item(
        "completed",
        id="item_1",
        type="mcp_tool_call",
        server="github",
        tool="call",
        arguments={"auth": text, "list": [text]},
        result={"content": [{"type": "text", "text": f"echo {text}"}]},
        error=None,
        status="completed",
    )
    norm = normalize_event(event)
    body = orjson.dumps({"content": norm.content, "tool": norm.tool, "attrs": norm.attrs}).decode()
    assert secret not in body
    assert "[REDACTED:" in norm.content
    assert "[REDACTED:" in orjson.dumps(norm.tool).decode()
    assert "[REDACTED:" in orjson.dumps(norm.attrs["raw"]).decode()
    assert norm.attrs["redacted"] >= 1


def test_a_secret_in_a_command_output_is_masked_before_the_content_is_cut() -> None:
    # The token sits right where the 64 KiB cap cuts: it must not leak in part.
    output = "x" * (56 * 1024 - 20) + f" {GH} " + "y" * 100_000
    event = item(
        "completed",
        id="item_1",
        type="command_execution",
        command="cat big.log",
        aggregated_output=output,
        exit_code=0,
        status="completed",
    )
    norm = normalize_event(event)
    assert GH[:12] not in norm.content
    assert norm.attrs["truncated"] is True


def test_a_private_key_split_by_an_oversized_line_cut_leaks_neither_half() -> None:
    body = "\n".join("MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun" for _ in range(200))
    key = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    output = "x" * (56 * 1024 - 3000) + key + "y" * (2 * 1024 * 1024) + key + "z" * 3000
    event = item(
        "completed",
        id="item_1",
        type="command_execution",
        command="cat id_rsa",
        aggregated_output=output,
        exit_code=0,
        status="completed",
    )
    norm = normalize_event(orjson.dumps(event), max_line_bytes=1 << 20)
    assert norm.attrs["oversized"] is True
    assert "MIIEowIBAAKCAQEA" not in norm.content
    assert norm.content.count("[REDACTED:private-key]") == 2


# -- the line gate (`may_match_json`): it may open for nothing, but never stay shut on a secret --


def _rules_matching(text: str) -> set[int]:
    """Indexes into `_RULES` of the rules that match somewhere in `text`."""
    by_group = {redact._BUILTIN.groupindex[f"r{i}"]: i for i in range(len(redact._RULES))}
    return {by_group[m.lastindex or 0] for m in redact._BUILTIN.finditer(text)}


def test_every_rule_names_the_substrings_its_matches_need() -> None:
    assert all(rule.needles for rule in redact._RULES)
    seen: set[int] = set()
    for text in SECRET_TEXTS:
        for index in _rules_matching(text):
            seen.add(index)
            needles = redact._RULES[index].needles
            assert any(needle in text for needle in needles), (redact._RULES[index].kind, text)
    assert seen == set(range(len(redact._RULES))), "a rule has no example in SECRET_TEXTS"


@pytest.mark.parametrize("text", SECRET_TEXTS)
def test_the_line_gate_opens_for_every_secret_shape_in_a_json_string(text: str) -> None:
    assert Redactor().redact(text)[1] > 0
    assert Redactor().may_match_json(
        orjson.dumps({"type": "item.completed", "item": {"text": f"x {text} y"}})
    )


@pytest.mark.parametrize(
    "line",
    [
        rb'{"type":"turn.started"}',
        rb'{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"All good.\nDone"}}',
        rb'{"a":"tab\there, a \"quote\", a backslash\\n (escaped) and key/value text: fine"}',
        rb'{"command":["bash","-lc","git log --oneline | head -5"]}',
    ],
)
def test_the_line_gate_lets_ordinary_json_lines_through(line: bytes) -> None:
    assert not Redactor().may_match_json(line)


@pytest.mark.parametrize(
    "line",
    [
        rb'{"a":"\u0067hp_a1B2c3D4e5F6g7H8i9J0a1B2c3D4e5F6g7H8i9J0"}',  # \u spells a needle's letter
        rb'{"a":"x\/y"}',
        rb'{"a":"bell\b"}',
        rb'{"a":"cr\r"}',
        rb'{"a":"{\"k\": 1}"}',  # JSON inside a string: its members are not looked at by name
        b'{"a":"del\x7f"}',
        rb'{"a":"mail me@host"}',
    ],
)
def test_the_line_gate_opens_for_escapes_it_cannot_see_through(line: bytes) -> None:
    assert Redactor().may_match_json(line)


def test_the_line_gate_refuses_a_needle_that_joined_strings_could_make() -> None:
    with pytest.raises(ValueError, match="joins strings"):
        redact._LineGate(["hooks.slack"])
    with pytest.raises(ValueError, match="no anchor"):
        redact._LineGate(["abc"])
