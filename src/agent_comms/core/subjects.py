"""Subject building and the header names of the contract (DESIGN.md, "Subjects and headers").

run:     <prefix>.<workflow_namespace>.<workflow_name>.<workflow_uid>.agent.<agent_id>.<kind>
general: <prefix>.general.<kind>
"""

from __future__ import annotations

import re
from typing import Final

DEFAULT_PREFIX: Final = "argo.workflow"

MSG_ID_HEADER: Final = "Nats-Msg-Id"
"""JetStream de-duplicates on this header inside the stream's duplicate window."""

CONTENT_TYPE_HEADER: Final = "Content-Type"
JSON_CONTENT_TYPE: Final = "application/json"

GENERAL_ID_SUFFIX: Final = ":general"
"""The stream de-duplicates across all its subjects, so the general copy needs its own id."""

# NATS forbids '.', '*', '>' and white space inside a token; Kubernetes names may contain dots.
# Anything outside a conservative set becomes '_' so a token can never split or wildcard a subject.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-:@=+]")
_PREFIX_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")


def sanitize_token(value: str) -> str:
    """One subject token from any string: unsafe characters become '_', an empty value becomes '_'."""
    token = _UNSAFE.sub("_", value)
    return token or "_"


def validate_prefix(prefix: str) -> str:
    """Check a subject prefix such as `argo.workflow` (dot-separated plain tokens) and return it."""
    tokens = prefix.split(".")
    if not prefix or not all(_PREFIX_TOKEN.match(t) for t in tokens):
        raise ValueError(
            f"NATS_SUBJECT_PREFIX={prefix!r}: use dot-separated tokens of letters, digits, '_' or '-' "
            "(the default is 'argo.workflow')"
        )
    return prefix


def run_subject(prefix: str, namespace: str, name: str, uid: str, agent_id: str, kind: str) -> str:
    """The run subject of one line; always eight tokens under the default two-token prefix."""
    return ".".join(
        (
            prefix,
            sanitize_token(namespace),
            sanitize_token(name),
            sanitize_token(uid),
            "agent",
            sanitize_token(agent_id),
            sanitize_token(kind),
        )
    )


def general_subject(prefix: str, kind: str) -> str:
    """The general-channel subject for a kind; four tokens under the default prefix."""
    return f"{prefix}.general.{sanitize_token(kind)}"


def stream_subjects(prefix: str) -> str:
    """The subject filter a stream must cover for this prefix."""
    return f"{prefix}.>"
