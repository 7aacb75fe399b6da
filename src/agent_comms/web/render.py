"""Agent text to safe HTML: markdown rendered on the server, because message content is untrusted.

markdown-it-py with raw HTML disabled (a `<script>` or an `on*=` attribute stays text, escaped),
links allowed only for http(s), mailto and in-page/relative targets (so `javascript:`,
`vbscript:` and `data:` never become an href or a src), images not loaded at all (shown as
links: a remote image would tell its owner who read the transcript), and ANSI escapes removed
first. The pages add a Content-Security-Policy on top; this module alone must already be safe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

ANSI: Final = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
)
"""ANSI escape sequences (ECMA-48): the core already cleans lines; this is defence in depth."""

SAFE_SCHEMES: Final = frozenset(("http", "https", "mailto"))
MAX_RENDER_CHARS: Final = 128 * 1024
"""Content above this is shown as plain text: rendering cost stays bounded (content is capped at
64 KiB by the contract; this guards the function against other callers)."""


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text) if "\x1b" in text else text


def is_safe_link(url: str) -> bool:
    """http(s) and mailto URLs, and scheme-less ones (relative, `#anchor`); nothing else."""
    candidate = "".join(ch for ch in url if ch >= " " and not ch.isspace()).lower()
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return False
    if parts.scheme:
        return parts.scheme in SAFE_SCHEMES
    # "//host/x" is another origin without a scheme; a colon before any slash is a scheme too.
    return not candidate.startswith("//") and ":" not in candidate.split("/", 1)[0]


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


def _image(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    escaped_alt = _escape(f"image: {alt}")
    if not src:
        return escaped_alt
    return f'<a href="{_escape(src)}" rel="nofollow noopener noreferrer">{escaped_alt}</a>'


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _make() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = is_safe_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


_MD: Final = _make()


def render_markdown(text: str) -> str:
    """Safe HTML for agent markdown; oversized text comes back as an escaped <pre>."""
    clean = strip_ansi(text)
    if len(clean) > MAX_RENDER_CHARS:
        return f"<pre>{_escape(clean)}</pre>"
    return str(_MD.render(clean))


def render_options() -> dict[str, Any]:
    """What the renderer allows, for the OpenAPI description and the docs."""
    return {"html": False, "link_schemes": sorted(SAFE_SCHEMES), "images": "shown as links"}
