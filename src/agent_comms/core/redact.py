"""Secret redaction: well-known credential shapes become `[REDACTED:<kind>]` (DESIGN.md, "Secrets").

It runs on every line, so the common case (no secret) must cost one regex scan. All built-in
shapes live in ONE compiled alternation whose every branch starts with a literal character:
CPython's `re` then computes a first-character set for the whole pattern and skips, in C, every
position whose character cannot start a secret. Prefixes that would otherwise come first (`ghp`,
`sk`, `ey`, `https`, `Authorization`) are checked with a lookbehind after the anchor character,
and the part of the token before the anchor is added back when masking (`back`).

A rule either masks the whole token (plus `back` characters before it) or only its `s<N>` group
(the credential after `Authorization: Bearer`, the password in a URL, the value after
`aws_secret_access_key =`), so people still see what kind of thing was there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["SECRET_MEMBER_NAMES", "Redactor", "is_unmasked_secret_value", "mask"]

MAX_DEPTH: Final = 200
"""`redact_obj` masks containers nested deeper than this instead of recursing into them."""


def mask(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    anchor: str
    """The literal first character of the branch (CPython's first-character set needs it)."""
    rest: str
    """The rest of the branch; a group `(?P<s>...)` limits what is masked."""
    back: int = 0
    """Characters before the anchor that belong to the token (`ey` before `J`); `PEM_BODY_BEFORE`
    extends the mask back over the base64 body in front of the match instead."""
    guard: str = ""
    """A cheap test shared by the rules of one anchor (e.g. `(?=//)`), tried before any of them."""
    needles: tuple[str, ...] = ()
    """Substrings one of which every text the rule matches in holds (lookbehinds included):
    `Redactor.may_match_json` looks for these instead of running the rule (see `_LineGate`)."""


PEM_BODY_BEFORE: Final = -1

# Read backwards (on the reversed text): base64 body lines and line breaks, also as JSON escapes.
_PEM_BODY_REVERSED: Final = re.compile(r"(?:[nr]\\|[A-Za-z0-9+/=\r\n])*")  # escapes first

_WORD: Final = "A-Za-z0-9_"
_B64URL: Final = "A-Za-z0-9_-"
# A value assigned to an AWS secret key name: `= wJalr...`, `: "wJalr..."`, `="wJalr..."`.
_ASSIGN: Final = r"""["']?[ \t]*[:=][ \t]*["']?"""
_AWS_SECRET: Final = rf"{_ASSIGN}(?P<s>[A-Za-z0-9/+]{{40}})(?![A-Za-z0-9/+=])"
_PEM_LABEL: Final = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
# Body of a PEM block: base64, header lines (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: AES-128-CBC,..`),
# line breaks, also as JSON escapes (`\n` inside a service-account file), and single dashes.
_PEM_BODY: Final = r"(?:[A-Za-z0-9+/=\s:,.]|\\[nr]|-(?!----))*"
# A value assigned to a secret-named variable or flag: not a reference ($VAR, <placeholder>, {x}).
_ASSIGNED: Final = r"""["']?(?P<s>[^\s"'$<{}()\[\]\\`*][^\s"'\\`]{3,})"""
_SECRET_JSON_KEYS: Final = (
    "password",
    "passwd",
    "secret",
    "client_secret",
    "api_key",
    "apiKey",
    "access_token",
    "refresh_token",
    "auth_token",
)
_ON_COLON: Final = r"""(?<=["'nN]:)"""
"""Guard of the `:` rules that look behind: a JSON member (`":`) or `Authorization:` (`n:`)."""
_JSON_MEMBER: Final = '":'
"""The needle of the rule for JSON members named like secrets (`"password": "..."`), which the
line gate does not look for: in a JSON line, text holds `":` after a name only as `\\":` inside a
string (`_UNPLAIN_JSON` finds it) or as a member of an object (the caller checks member names)."""

# Anchors are chosen to be rare in code and prose; each costs an attempt wherever it occurs.
_RULES: Final = (
    # GitHub: classic tokens (ghp_/gho_/ghu_/ghs_/ghr_ + 36) and fine-grained github_pat_.
    _Rule(
        "github-token",
        "g",
        rf"h[pousr]_(?<![{_WORD}]gh[pousr]_)[A-Za-z0-9]{{20,255}}",
        needles=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    _Rule(
        "github-token",
        "g",
        rf"ithub_pat_(?<![{_WORD}]github_pat_)[{_WORD}]{{20,255}}",
        needles=("github_pat_",),
    ),
    # AWS access key ids (AKIA long-term, ASIA temporary, ABIA/ACCA other partitions).
    _Rule(
        "aws-access-key-id",
        "A",
        r"(?:KIA|SIA|BIA|CCA)(?<![A-Za-z0-9]A...)[A-Z0-9]{16}(?![A-Za-z0-9])",
        needles=("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    # GCP API keys: AIza + 35.
    _Rule("gcp-api-key", "A", rf"Iza(?<![{_B64URL}]AIza)[{_B64URL}]{{35}}", needles=("AIza",)),
    # AWS secret access keys, only next to their name (40 base64 characters are common otherwise).
    _Rule(
        "aws-secret-access-key",
        "k",
        r"ey(?:(?<=secret_access_key)|(?<=secret-access-key))" + _AWS_SECRET,
        needles=("secret_access_key", "secret-access-key"),
    ),
    _Rule("aws-secret-access-key", "K", r"ey(?<=ecretAccessKey)" + _AWS_SECRET, needles=("ecretAccessKey",)),
    _Rule(
        "aws-secret-access-key",
        "K",
        r"EY(?<=SECRET_ACCESS_KEY)" + _AWS_SECRET,
        needles=("SECRET_ACCESS_KEY",),
    ),
    # Slack bot/user/app/refresh/legacy tokens.
    _Rule("slack-token", "x", rf"ox[abeprs]-(?<![{_B64URL}]xox.-)[A-Za-z0-9-]{{10,}}", needles=("xox",)),
    # Anthropic before OpenAI: both start with `sk-`.
    _Rule(
        "anthropic-key",
        "k",
        rf"-ant-(?<=sk-ant-)(?<![{_B64URL}]sk-ant-)[{_B64URL}]{{20,}}",
        back=1,
        needles=("sk-",),
    ),
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-); a digit is required so that kebab-case words
    # such as `sk-learn-compatible-estimator` stay.
    _Rule(
        "openai-key",
        "k",
        rf"-(?<=sk-)(?<![{_B64URL}]sk-)(?:proj-|svcacct-|admin-)?(?=[A-Za-z_-]*[0-9])[{_B64URL}]{{20,}}",
        back=1,
        needles=("sk-",),
    ),
    # JWTs: header and payload are base64url JSON objects, so both start with `ey`.
    _Rule(
        "jwt",
        "J",
        rf"(?<=eyJ)(?<![{_B64URL}]eyJ)[{_B64URL}]{{5,}}\.ey[{_B64URL}]{{5,}}\.[{_B64URL}]*",
        back=2,
        needles=("eyJ",),
    ),
    # Slack incoming webhooks: keep the host, mask the path that is the credential.
    _Rule(
        "slack-webhook",
        ":",
        r"//hooks\.slack\.com/(?<=https://hooks\.slack\.com/)(?:services|workflows|triggers)/"
        r"(?P<s>[A-Za-z0-9_/-]+)",
        guard="(?=//)",
        needles=("//hooks",),
    ),
    # Passwords in URLs: scheme://user:PASSWORD@host; only the password is masked.
    _Rule(
        "url-password", ":", r"""//[^\s/?#@:"'<>]*:(?P<s>[^\s/?#@"'<>]+)@""", guard="(?=//)", needles=("@",)
    ),
    # `Authorization: Bearer|Basic|token <credential>` (also as a JSON member): keep the scheme.
    _Rule(
        "authorization",
        ":",
        r"""(?:(?<=uthorization:)|(?<=UTHORIZATION:)|(?<=uthorization":)|(?<=uthorization':))"""
        r"""[ \t]*["']?[ \t]*(?:Bearer|bearer|BEARER|Basic|basic|BASIC|Token|token|Bot)[ \t]+"""
        r"""(?P<s>[^\s"'$<{}\\,;]{4,})""",
        guard=_ON_COLON,
        needles=("uthorization", "UTHORIZATION"),
    ),
    # `"private_key": "..."` (GCP service-account files), whatever the value looks like.
    _Rule(
        "private-key",
        ":",
        r'(?<="private_key":)[ \t]*"(?P<s>(?:[^"\\]|\\.){8,})"',
        guard=_ON_COLON,
        needles=("private_key",),
    ),
    # Other JSON members whose name says secret.
    _Rule(
        "secret",
        ":",
        "(?:" + "|".join(f'(?<="{k}":)' for k in _SECRET_JSON_KEYS) + r')[ \t]*"(?P<s>(?:[^"\\]|\\.){4,})"',
        guard=_ON_COLON,
        needles=(_JSON_MEMBER,),
    ),
    # PEM private keys, whole blocks, or a BEGIN line with as much body as the text holds.
    _Rule(
        "private-key",
        "-",
        rf"----BEGIN {_PEM_LABEL}{_PEM_BODY}(?:-----END {_PEM_LABEL})?",
        needles=("PRIVATE",),
    ),
    # The end of a block whose BEGIN line is not in the text (the tail of a line cut in the
    # middle): the body in front of the END line is masked too.
    _Rule("private-key", "-", rf"----END {_PEM_LABEL}", back=-1, needles=("PRIVATE",)),
    # Flags: --password=..., --github-token=..., --api-key=...
    _Rule(
        "secret",
        "-",
        r"(?:password|token|secret|api-key)=" + _ASSIGNED,
        needles=("password=", "token=", "secret=", "api-key="),
    ),
    # Shell/env assignments: DB_PASSWORD=..., GITHUB_TOKEN=..., OPENAI_API_KEY=...
    _Rule("secret", "D", r"=(?:(?<=PASSWORD=)|(?<=PASSWD=))" + _ASSIGNED, needles=("PASSWORD=", "PASSWD=")),
    _Rule("secret", "T", r"=(?<=SECRET=)" + _ASSIGNED, needles=("SECRET=",)),
    _Rule("secret", "N", r"=(?<=TOKEN=)" + _ASSIGNED, needles=("TOKEN=",)),
    _Rule("secret", "Y", r"=(?:(?<=API_KEY=)|(?<=APIKEY=)|(?<=ACCESS_KEY=))" + _ASSIGNED, needles=("KEY=",)),
)

# Kinds of secrets a dict member's name gives away, whatever its value (`redact_obj`).
_SECRET_KEYS: Final = {
    "password": "secret",
    "passwd": "secret",
    "secret": "secret",
    "client_secret": "secret",
    "api_key": "secret",
    "apikey": "secret",
    "access_token": "secret",
    "refresh_token": "secret",
    "auth_token": "secret",
    "authorization": "authorization",
    "proxy_authorization": "authorization",
    "x_api_key": "secret",
    "x_auth_token": "secret",
    "private_key": "private-key",
    "secret_access_key": "aws-secret-access-key",
    "aws_secret_access_key": "aws-secret-access-key",
    "clientsecret": "secret",
    "accesstoken": "secret",
    "refreshtoken": "secret",
    "authtoken": "secret",
    "privatekey": "private-key",
    "secretaccesskey": "aws-secret-access-key",
}


def _spellings() -> dict[str, str]:
    """Every common spelling of the secret member names, so most lookups are one hash probe."""
    out: dict[str, str] = {}
    for name, kind in _SECRET_KEYS.items():
        words = name.split("_")
        camel = words[0] + "".join(w.title() for w in words[1:])
        for spelling in (name, name.upper(), name.title(), camel, camel[:1].upper() + camel[1:]):
            out[spelling] = kind
            out[spelling.replace("_", "-")] = kind
        out[name.replace("_", "")] = kind
    return out


_SECRET_KEY_SPELLINGS: Final = _spellings()
_SECRET_KEY_NAMES: Final = frozenset(_SECRET_KEY_SPELLINGS)
"""A set, so `keys().isdisjoint()` iterates the (short) member names, not this."""

SECRET_MEMBER_NAMES: Final = _SECRET_KEY_NAMES
"""The spellings `may_have_secret_keys` looks for: `SECRET_MEMBER_NAMES.isdisjoint(obj)` is the
same test without the call, for walks over many objects."""


def _compile_builtin() -> tuple[re.Pattern[str], dict[int, tuple[str, int, int | None]]]:
    """One alternation of all rules, `anchor(?:guard(?:(?P<rN>rest)|...)|...)` per anchor.

    `s` groups are renamed `sN`. Rules sharing an anchor keep their order (Anthropic before
    OpenAI), so the first that matches at a position wins.
    """
    by_anchor: dict[str, dict[str, list[str]]] = {}
    for i, rule in enumerate(_RULES):
        # A value that is already a mask stays as it is: redaction is idempotent.
        rest = rule.rest.replace("(?P<s>", rf"(?!\[REDACTED:)(?P<s{i}>")
        by_anchor.setdefault(rule.anchor, {}).setdefault(rule.guard, []).append(f"(?P<r{i}>{rest})")
    branches = []
    for anchor, guarded in by_anchor.items():
        alternatives = "|".join(f"{guard}(?:{'|'.join(rules)})" for guard, rules in guarded.items())
        branches.append(f"{re.escape(anchor)}(?:{alternatives})")
    pattern = re.compile("|".join(branches))
    by_group: dict[int, tuple[str, int, int | None]] = {}
    for i, rule in enumerate(_RULES):
        by_group[pattern.groupindex[f"r{i}"]] = (mask(rule.kind), rule.back, pattern.groupindex.get(f"s{i}"))
    return pattern, by_group


_BUILTIN, _BY_GROUP = _compile_builtin()

# -- the line gate: can any rule match in this JSON line at all? --------------------------------

_UNPLAIN_JSON: Final = re.compile(rb'\\(?:[^nt"\\]|":)')
"""An escape other than `\\n`, `\\t`, `\\"` and `\\\\` (`\\u` can spell any needle, `\\/` the slashes
of `//hooks`), or an escaped quote before a colon: JSON inside a string, the JSON-member rules' needle.
Backslashes are not paired up, so `\\\\` followed by another character counts too: more lines go
the long way, none the wrong one, and the search keeps its one-byte prefix."""

_JOIN_CHARS: Final = frozenset(" \t\r\n\"'\\.,:;{}[]")
"""What normalization puts between strings it joins (argv quoting, `server.tool`, JSON written
again). No needle holds one, so a joined text holds a needle only if one of its pieces does. JSON
written again also escapes: `\\n`, `\\t`, `\\"`, `\\\\` (and `\\u001b` for ESC); a needle could
only start at such an escape's letter, and the one that can (`token=`) belongs to a rule that
wants `-` there, not a backslash."""

_RARE_ANCHORS: Final = "ZVBJKWIz=C"
"""Characters a few of which occur per line of a Codex log, rarest first; see `_LineGate`."""

_COMMON_ANCHORS: Final = "xkh"
"""Characters needed by needles that hold no rare one; tens of them occur per line."""

_RARE, _COMMON, _SINGLE = b"\x01", b"\x02", b"\x03"


class _LineGate:
    """Looks for every rule's needles in a line with a few C-level passes instead of one per needle.

    Running the rules themselves over a whole line costs about 8 µs per line of the benchmark's
    events file (780 bytes on average): their anchors (`g`, `k`, `:`, ...) are common. Instead,
    each needle is found through one of its characters, its anchor. One `bytes.translate` maps
    every anchor to a sentinel byte, so each scan searches for one byte, which CPython's `re` does
    in C without entering the pattern; only at a sentinel is the rest of a needle compared:

    - rare anchors (`_RARE_ANCHORS`): every needle anchored on one is tried at each, the
      characters before the anchor by lookbehind;
    - common anchors (`_COMMON_ANCHORS`): only needles that go on after their anchor, so that
      nearly every attempt fails at once, on its first literal character;
    - one-character needles (`@`) are their own sentinel, found by `in`.

    Needles are compared in translated form, in which several characters share a sentinel: the
    gate may find a needle that is not there (the caller then redacts as usual), never the reverse.
    With the test for escapes (`_UNPLAIN_JSON`), about 2.4 µs per line of that file. An attempt at
    a sentinel costs about 25 ns, the scans about 0.4 ns per byte: anchors were picked for the few
    attempts they cause (merging the two scans into one was measured slower).
    """

    def __init__(self, needles: Sequence[str]) -> None:
        table = bytearray(range(256))
        for ch in _RARE_ANCHORS:
            table[ord(ch)] = _RARE[0]
        for ch in _COMMON_ANCHORS:
            table[ord(ch)] = _COMMON[0]
        table[0x7F] = _SINGLE[0]  # DEL: cleaning removes it, joining the text around it
        for needle in needles:
            if _JOIN_CHARS.intersection(needle) or not needle.isascii():
                raise ValueError(f"needle {needle!r} holds a character that joins strings, or is not ASCII")
            if len(needle) == 1:
                table[ord(needle)] = _SINGLE[0]
        self.table = bytes(table)
        rare: list[tuple[bytes, bytes]] = []
        common: list[tuple[bytes, bytes]] = []
        for needle in needles:
            if len(needle) > 1:
                sentinel, after, lookbehind = self._branch(needle)
                (rare if sentinel == _RARE else common).append((after, lookbehind))
        self.rare = re.compile(_RARE + _alternation(rare))
        self.common = re.compile(_COMMON + _alternation(common))

    def _branch(self, needle: str) -> tuple[bytes, bytes, bytes]:
        """The sentinel of the needle's anchor, and the translated needle after and up to it."""
        inner = len(needle) - 1  # an anchor before the last character leaves a literal to compare
        index = next((needle.find(ch, 0, inner) for ch in _RARE_ANCHORS if ch in needle[:inner]), -1)
        sentinel = _RARE
        if index < 0:
            index = next((needle.find(ch, 0, inner) for ch in _COMMON_ANCHORS if ch in needle[:inner]), -1)
            sentinel = _COMMON
        if index < 0 and needle[-1] in _RARE_ANCHORS:
            index, sentinel = inner, _RARE
        if index < 0:
            raise ValueError(f"needle {needle!r} holds no anchor character")
        before = needle[:index].encode().translate(self.table)
        after = needle[index + 1 :].encode().translate(self.table)
        return sentinel, after, (before + sentinel + after if before else b"")

    def finds_needle(self, data: bytes) -> bool:
        text = data.translate(self.table)
        return _SINGLE in text or self.common.search(text) is not None or self.rare.search(text) is not None


def _alternation(branches: list[tuple[bytes, bytes]]) -> bytes:
    """`(?:...)` matching any (rest of needle, text up to its end), grouped by the first byte.

    The regex engine rejects a branch that starts with a literal in one comparison, so grouping
    by first byte makes a failing attempt cost one comparison per distinct byte. Branches that are
    only a lookbehind (the anchor was the needle's last character) come last, behind one test of
    the byte before the sentinel that rejects most attempts for all of them.
    """
    groups: dict[bytes, set[bytes]] = {}
    tails: set[bytes] = set()
    for after, lookbehind in branches:
        check = b"(?<=" + re.escape(lookbehind) + b")" if lookbehind else b""
        if after:
            groups.setdefault(after[:1], set()).add(re.escape(after[1:]) + check)
        else:
            tails.add(lookbehind)
    alternatives = [
        re.escape(first) + (b"(?:" + b"|".join(sorted(rests)) + b")" if len(rests) > 1 else rests.pop())
        for first, rests in sorted(groups.items())
    ]
    if tails:  # each is `<before><sentinel>`, `before` not empty
        before = b"".join(sorted({re.escape(tail[-2:-1]) for tail in tails}))
        sentinel = re.escape(next(iter(tails))[-1:])
        checks = b"|".join(sorted(b"(?<=" + re.escape(tail) + b")" for tail in tails))
        alternatives.append(b"(?<=[" + before + b"]" + sentinel + b")(?:" + checks + b")")
    return b"(?:" + b"|".join(alternatives) + b")"


_LINE_GATE: Final = _LineGate([n for rule in _RULES for n in rule.needles if n != _JSON_MEMBER])

_SHORTEST_SECRET: Final = 8
"""No built-in shape fits in fewer characters (`://:pass@` is the shortest)."""

_SHORT_TEXT: Final = 20
"""Below this length only shapes with `:`, `=`, `xox` or `eyJ` fit (the others are longer)."""

_CUSTOM_MASK: Final = mask("custom")

KNOWN_CLEAN_MAX_CHARS: Final = 128
KNOWN_CLEAN_MAX_ENTRIES: Final = 8192
"""Short strings found free of secrets are remembered by value (event types, statuses, item types
repeat on every line); the set is emptied when full, so hostile input cannot grow it."""


class Redactor:
    """Masks secrets in text and in JSON-like values.

    `extra_patterns` are regular expressions from configuration. A group named `secret` limits
    what is masked (a match in which it took no part, or matched nothing, is left alone);
    without one the whole match is masked, as `[REDACTED:custom]`. Empty matches are ignored.
    An invalid pattern raises `ValueError` naming it.
    """

    def __init__(self, extra_patterns: Sequence[str] = ()) -> None:
        custom: list[tuple[re.Pattern[str], int | None]] = []
        for source in extra_patterns:
            try:
                compiled = re.compile(source)
            except re.error as exc:
                raise ValueError(f"invalid redaction pattern {source!r}: {exc}") from None
            custom.append((compiled, compiled.groupindex.get("secret")))
        self._custom = tuple(custom)
        self._known_clean: set[str] = set()

    def redact(self, text: str) -> tuple[str, int]:
        """The text with every secret masked, and the number of secrets masked.

        Text without a secret comes back as the same object. Masked text is stable: redacting it
        again masks nothing more.
        """
        short = len(text) < KNOWN_CLEAN_MAX_CHARS
        if short and text in self._known_clean:
            return text, 0
        result = self._redact(text)
        if short and not result[1]:
            if len(self._known_clean) >= KNOWN_CLEAN_MAX_ENTRIES:
                self._known_clean.clear()
            self._known_clean.add(text)
        return result

    def _redact(self, text: str) -> tuple[str, int]:
        if self._custom:
            text, count = self._redact_builtin(text)
            for pattern, group in self._custom:
                text, n = _redact_custom(text, pattern, group)
                count += n
            return text, count
        if len(text) < _SHORT_TEXT and (
            len(text) < _SHORTEST_SECRET
            or (":" not in text and "=" not in text and "xox" not in text and "eyJ" not in text)
        ):
            return text, 0  # a third of the cost of a regex search, for the many short strings
        return self._redact_builtin(text)

    def _redact_builtin(self, text: str) -> tuple[str, int]:
        first = _BUILTIN.search(text)
        if first is None:
            return text, 0
        pieces: list[str] = []
        done = 0  # end of the text already copied or masked
        count = 0
        for m in _BUILTIN.finditer(text, first.start()):
            replacement, back, secret = _BY_GROUP[m.lastindex or 0]
            if secret is not None:
                start, end = m.span(secret)
            elif back == PEM_BODY_BEFORE:
                start, end = _pem_body_start(text, done, m.start()), m.end()
            else:
                start, end = m.start() - back, m.end()
            start = max(start, done)
            if start >= end:
                continue
            pieces.append(text[done:start])
            pieces.append(replacement)
            done = end
            count += 1
        if not count:
            return text, 0
        pieces.append(text[done:])
        return "".join(pieces), count

    @property
    def has_extra_patterns(self) -> bool:
        return bool(self._custom)

    def may_match_json(self, line: bytes) -> bool:
        """Whether redaction may mask anything in what normalization makes of this JSON line.

        False guarantees that no built-in shape matches in any string the line holds, nor in text
        made of its strings, numbers and member names joined as normalization joins them (argv
        quoting, `server.tool`, JSON written again), provided that no object in it has a member
        named like a secret (`may_have_secret_keys`, which the caller checks on the parsed value).
        True for any line with an escape other than `\\n`, `\\t`, `\\"` and `\\\\`, or with DEL, so
        that its strings hold nothing cleaning removes (which would join the text around it) but
        white space. Always True with extra patterns.
        """
        # `_LineGate.finds_needle`, inlined: this runs for every line of an events file.
        if self._custom or _UNPLAIN_JSON.search(line) is not None:
            return True
        text = line.translate(_LINE_GATE.table)
        return (
            _SINGLE in text
            or _LINE_GATE.common.search(text) is not None
            or _LINE_GATE.rare.search(text) is not None
        )

    def may_match_bytes(self, data: bytes) -> bool:
        """`may_match_json` without its test for escapes: for bytes whose escapes the caller has
        vetted (a `\\u` escape that spells a needle's character would hide the needle)."""
        return bool(self._custom) or _LINE_GATE.finds_needle(data)

    def redact_cached(self, text: str, memo: dict[int, tuple[str, int]]) -> tuple[str, int]:
        """`redact`, remembering results by string identity in `memo`.

        Normalization holds the same string objects in content, tool and attrs; each is scanned
        once. `memo` must not outlive the strings it was filled from (ids are reused after that).
        """
        if len(text) < _SHORTEST_SECRET and not self._custom:
            return text, 0
        key = id(text)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = self.redact(text)
        return hit

    @staticmethod
    def secret_key_kind(key: object) -> str | None:
        """The kind of secret a member named `key` holds (`password`, `client_secret`, ...), or None.

        Case and `-`/`_` do not matter (`Client-Secret`, `CLIENT_SECRET`); camelCase does not
        either (`clientSecret`).
        """
        if not isinstance(key, str):
            return None
        kind = _SECRET_KEY_SPELLINGS.get(key)
        if kind is None and len(key) <= 32 and not key.islower():
            kind = _SECRET_KEYS.get(key.lower().replace("-", "_"))
        return kind

    @staticmethod
    def may_have_secret_keys(obj: dict[Any, Any]) -> bool:
        """Whether a member name of `obj` is a common spelling of a secret's name (one C-level test).

        Spellings: snake, kebab, upper, title, camel and Pascal case (`client_secret`,
        `Client-Secret`, `CLIENT_SECRET`, `clientSecret`, `ClientSecret`, `clientsecret`).
        """
        return not obj.keys().isdisjoint(_SECRET_KEY_NAMES)

    def redact_obj(self, obj: Any) -> tuple[Any, int]:
        """`redact` applied to every string in a JSON-like value (dict values, list items).

        Keys are never changed, but a non-empty string member whose key names a secret
        (`password`, `client_secret`, `authorization`, ...) is masked whole. Unchanged containers
        come back as the same objects (no copies on the common path). Containers nested deeper
        than `MAX_DEPTH` are masked whole rather than scanned.
        """
        memo: dict[int, tuple[str, int]] = {}
        return self._obj(obj, memo, 0)

    def _obj(self, obj: Any, memo: dict[int, tuple[str, int]], depth: int) -> tuple[Any, int]:
        if isinstance(obj, str):
            return self.redact_cached(obj, memo)
        if isinstance(obj, dict):
            if depth >= MAX_DEPTH:
                return mask("too-deep"), 1
            total = 0
            changed: dict[Any, Any] | None = None
            for k, v in obj.items():
                kind = self.secret_key_kind(k)
                if kind is not None and is_unmasked_secret_value(v):
                    new, n = mask(kind), 1
                else:
                    new, n = self._obj(v, memo, depth + 1)
                if n:
                    total += n
                    if changed is None:
                        changed = dict(obj)
                    changed[k] = new
            return (obj, 0) if changed is None else (changed, total)
        if isinstance(obj, (list, tuple)):
            if depth >= MAX_DEPTH:
                return mask("too-deep"), 1
            total = 0
            items: list[Any] | None = None
            for i, v in enumerate(obj):
                new, n = self._obj(v, memo, depth + 1)
                if n:
                    total += n
                    if items is None:
                        items = list(obj)
                    items[i] = new
            return (obj, 0) if items is None else (items, total)
        return obj, 0


def _pem_body_start(text: str, floor: int, end: int) -> int:
    """Where the base64 body that ends at `end` starts (not before `floor`); linear in its length."""
    before = text[floor:end]
    body = _PEM_BODY_REVERSED.match(before[::-1])
    return end - (body.end() if body else 0)


def is_unmasked_secret_value(value: object) -> bool:
    """A value under a secret-naming key that still needs masking (a non-empty, unmasked string)."""
    return isinstance(value, str) and bool(value) and not value.startswith("[REDACTED:")


def _redact_custom(text: str, pattern: re.Pattern[str], group: int | None) -> tuple[str, int]:
    count = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal count
        whole = m.group(0)
        if not whole:
            return whole
        if group is None:
            count += 1
            return _CUSTOM_MASK
        start, end = m.span(group)
        if start < 0 or start == end:
            return whole
        count += 1
        offset = m.start()
        return whole[: start - offset] + _CUSTOM_MASK + whole[end - offset :]

    new = pattern.sub(replace, text)
    return (new, count) if count else (text, 0)
