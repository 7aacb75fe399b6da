from __future__ import annotations

import pytest

from agent_comms.core.text import (
    NOTHING_REMOVED,
    CleanFlags,
    clean_colours,
    clean_multiline,
    clean_text,
    decode_line,
    has_controls,
)


def test_valid_utf8_decodes_without_flag() -> None:
    assert decode_line("naïve → ok".encode()) == ("naïve → ok", False)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\xffb", "a\ufffdb"),
        (b"\xe2\x82x", "\ufffdx"),  # a truncated 3-byte sequence is one maximal invalid subpart
        (b"\xff\xfe", "\ufffd\ufffd"),
        (b"end\xc3", "end\ufffd"),
    ],
)
def test_invalid_utf8_becomes_one_replacement_per_maximal_invalid_subsequence(
    data: bytes, expected: str
) -> None:
    assert decode_line(data) == (expected, True)


def test_plain_text_comes_back_as_the_same_object_with_no_flags() -> None:
    text = "  - item with `code` and unicode é"
    cleaned, flags = clean_text(text)
    assert cleaned is text
    assert flags is NOTHING_REMOVED


def test_trailing_white_space_is_stripped_and_leading_kept() -> None:
    assert clean_text("    indented  \t ")[0] == "    indented"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x1b[31merror\x1b[0m: failed", "error: failed"),  # CSI (SGR)
        ("\x1b[2K\x1b[1Gdone", "done"),  # CSI erase line, cursor column
        ("\x1b]0;title\x07prompt$", "prompt$"),  # OSC ended by BEL
        ("\x1b]8;;https://x.y\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink ended by ST
        ("\x1b(B\x1b[mplain", "plain"),  # nF charset selection, as tput sgr0 emits
        ("\x1b7saved\x1b8", "saved"),  # two-byte ESC 7 / ESC 8
    ],
)
def test_ansi_escapes_are_removed_and_flagged(text: str, expected: str) -> None:
    cleaned, flags = clean_text(text)
    assert cleaned == expected
    assert flags.had_ansi


def test_carriage_return_keeps_the_last_non_blank_segment() -> None:
    assert clean_text("Downloading  10%\rDownloading  55%\rDownloading 100%\r")[0] == "Downloading 100%"
    assert clean_text("progress\r          \r")[0] == "progress"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x08", "\x0b", "\x1f", "\x7f"])
def test_control_characters_and_del_are_removed_and_flagged(char: str) -> None:
    cleaned, flags = clean_text(f"a{char}b")
    assert cleaned == "ab"
    assert flags.had_controls and not flags.had_ansi


def test_tab_survives_cleaning() -> None:
    assert clean_text("col1\tcol2")[0] == "col1\tcol2"


def test_a_line_of_nul_bytes_cleans_to_empty() -> None:
    assert clean_text("\x00" * 64)[0] == ""


def test_multiline_cleaning_keeps_newlines_and_overwrites_per_line() -> None:
    text = "step 1\r\nbar 10%\rbar 100%\n\x1b[32mok\x1b[0m\n\n"
    cleaned, flags = clean_multiline(text)
    assert cleaned == "step 1\nbar 100%\nok"
    assert flags.had_ansi


def test_multiline_cleaning_keeps_markdown_hard_breaks_inside_the_text() -> None:
    assert clean_multiline("line one  \nline two  ")[0] == "line one  \nline two"


def test_line_cleaning_removes_a_newline_that_multiline_cleaning_keeps() -> None:
    assert clean_text("a\nb")[0] == "ab"
    assert clean_multiline("a\nb")[0] == "a\nb"


@pytest.mark.parametrize(
    ("text", "keep_newlines", "expected"),
    [
        ("plain ascii", False, False),
        ("unicode ünïcödé → ✓", False, False),
        ("tab\tonly", False, False),
        ("new\nline", False, True),
        ("new\nline", True, False),
        ("esc\x1b[0m", True, True),
        ("del\x7f", True, True),
    ],
)
def test_control_detection_is_exact(text: str, keep_newlines: bool, expected: bool) -> None:
    assert has_controls(text, keep_newlines=keep_newlines) is expected


@pytest.mark.parametrize(
    "text",
    [
        "plain  ",
        "\x1b[32mPASSED\x1b[0m [ 10%]\nnext line\t \n",
        "a\x1b[1;31mred\x1b[m and \x1b[2K cleared",
        "no escape at all\n\n",
        "",
    ],
)
def test_colour_cleaning_is_multiline_cleaning_for_text_with_only_colour_escapes(text: str) -> None:
    assert clean_colours(text) == clean_multiline(text)


def test_an_escape_that_removing_another_completes_is_a_control_character_not_a_colour() -> None:
    # One pass, as a terminal would not see the second escape either: the ESC left is a control.
    assert clean_multiline("a\x1b\x1b[31m[0mb") == ("a[0mb", CleanFlags(had_ansi=True, had_controls=True))
