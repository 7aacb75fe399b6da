"""Markdown to HTML for untrusted agent text: nothing executable survives, formatting does."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from agent_comms.web.render import is_safe_link, render_markdown, strip_ansi


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)" onclick="alert(2)">x</a>',
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](java\tscript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "![x](data:image/svg+xml,<svg onload=alert(1)>)",
        "<javascript:alert(1)>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        "[x](//evil.example/phish)",
    ],
)
def test_executable_content_is_inert(text: str) -> None:
    tags = Tags()
    tags.feed(render_markdown(text))
    assert {t for t, _ in tags.seen} <= {"p", "a"}, "only text survives (links only when safe)"
    for _, attrs in tags.seen:
        assert all(name in ("href", "rel") for name, _ in attrs), attrs
        assert all(not value or is_safe_link(value) for name, value in attrs if name == "href")


class Tags(HTMLParser):
    """The tags and attributes a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


def test_formatting_and_safe_links_survive() -> None:
    html = render_markdown(
        "**bold** `code` [docs](https://example.com/a?b=1) [here](#e-events-3)\n\n| a |\n|---|\n| 1 |"
    )
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html and "<table>" in html
    assert '<a href="https://example.com/a?b=1" rel="nofollow noopener noreferrer">docs</a>' in html
    assert 'href="#e-events-3"' in html


def test_images_become_links_so_nothing_remote_loads() -> None:
    html = render_markdown("![chart](https://example.com/pixel.png)")
    assert "<img" not in html and 'href="https://example.com/pixel.png"' in html and "image: chart" in html


def test_ansi_escapes_are_stripped() -> None:
    assert strip_ansi("\x1b[31mred\x1b[0m \x1b]0;title\x07done") == "red done"
    assert render_markdown("\x1b[1mbold\x1b[0m") == "<p>bold</p>\n"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://a.b", True),
        ("http://a.b", True),
        ("mailto:x@y", True),
        ("/agents/x", True),
        ("#e-1", True),
        ("relative/path", True),
        ("javascript:x", False),
        (" javascript:x", False),
        ("data:text/plain,x", False),
        ("//host/x", False),
        ("file:///etc/passwd", False),
    ],
)
def test_link_policy(url: str, ok: bool) -> None:
    assert is_safe_link(url) is ok
