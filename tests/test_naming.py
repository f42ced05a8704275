"""File names as golang-migrate reads them, and names as `create` writes them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcoord.core.naming import (
    MAX_NAME_LENGTH,
    format_filename,
    normalize_name,
    parse_filename,
    stray_reason,
)
from migcoord.errors import InvalidName


@pytest.mark.parametrize(
    ("filename", "version", "version_text", "name", "direction"),
    [
        ("000001_create_clients_table.up.sql", 1, "000001", "create_clients_table", "up"),
        ("000001_create_clients_table.down.sql", 1, "000001", "create_clients_table", "down"),
        ("000056_upgrade_channels_v6.0.up.sql", 56, "000056", "upgrade_channels_v6.0", "up"),
        ("7_Add-Email_Index.down.sql", 7, "7", "Add-Email_Index", "down"),
        ("1234567890_timestamped.up.sql", 1234567890, "1234567890", "timestamped", "up"),
        ("20240131120000_fourteen_digits.up.sql", 20240131120000, "20240131120000",
         "fourteen_digits", "up"),
        ("000010_name.with.dots.up.sql", 10, "000010", "name.with.dots", "up"),
    ],
)
def test_parse_filename_reads_names_as_golang_migrate_does(
    filename: str, version: int, version_text: str, name: str, direction: str
) -> None:
    """Dots, dashes, capitals and 10/14-digit timestamps parse like golang-migrate's regex."""
    parsed = parse_filename(filename)
    assert parsed is not None
    assert (parsed.version, parsed.version_text, parsed.name, parsed.direction) == (
        version, version_text, name, direction)


@pytest.mark.parametrize(
    "filename",
    ["notes.txt", "7_x.sql", "x_7.up.sql", "000001.up.sql", "000001_x.up.sql\n",
     "000001_x.UP.sql", "000001_x.up.sql.bak", "_x.up.sql", "000001-x.up.sql", "",
     "\u0661_x.up.sql", "000001_x\n.up.sql"],
)
def test_parse_filename_rejects_what_golang_migrate_would_not_read(filename: str) -> None:
    """Names outside `^([0-9]+)_(.*)\\.(up|down)\\.sql$` as Go reads it (`$` only at the
    very end, `.` not a newline, digits ASCII) are not migrations."""
    assert parse_filename(filename) is None


def test_versions_compare_as_numbers_not_text() -> None:
    """`7` and `000007` are the same version; `10` is above `9` whatever the padding."""
    seven = parse_filename("7_a.up.sql")
    padded = parse_filename("000007_a.up.sql")
    nine = parse_filename("000009_a.up.sql")
    ten = parse_filename("10_a.up.sql")
    assert seven is not None and padded is not None and nine is not None and ten is not None
    assert seven.version == padded.version == 7
    assert nine.version < ten.version


def test_stray_reason_says_why_a_file_is_not_a_migration() -> None:
    """A `.sql` file without `.up`/`.down` is explained differently from a text file."""
    assert "up.sql" in stray_reason("7_x.sql")
    assert "belong" in stray_reason("notes.txt")


def test_format_filename_pads_to_the_configured_width() -> None:
    """`create` writes the zero-padded version and never truncates a longer one."""
    assert format_filename(7, "add_index", "up", 6) == "000007_add_index.up.sql"
    assert format_filename(7, "add_index", "down", 3) == "007_add_index.down.sql"
    assert format_filename(1234567, "x", "up", 6) == "1234567_x.up.sql"


def test_normalize_name_lowercases_and_turns_spaces_and_dashes_into_underscores() -> None:
    """What a person types becomes a file-name-safe NAME."""
    assert normalize_name("Add Email-Index") == "add_email_index"
    assert normalize_name("  add_index  ") == "add_index"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_normalize_name_refuses_an_empty_name(raw: str) -> None:
    """An empty or blank name is an InvalidName that says it is empty."""
    with pytest.raises(InvalidName, match="empty"):
        normalize_name(raw)


@pytest.mark.parametrize("raw", ["../../etc/x", "a/b", "a\\b", "..", "x/../y"])
def test_normalize_name_refuses_path_separators_and_dotdot(raw: str) -> None:
    """A name can never point the new file outside the service's folder."""
    with pytest.raises(InvalidName, match="path separator"):
        normalize_name(raw)


def test_normalize_name_refuses_a_name_longer_than_the_limit() -> None:
    """300 characters is too long, and the message gives the limit."""
    with pytest.raises(InvalidName, match=f"at most {MAX_NAME_LENGTH}"):
        normalize_name("x" * 300)
    assert normalize_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH


def test_normalize_name_refuses_non_ascii_and_lists_the_offending_characters() -> None:
    """`Ünïcode` is refused (not silently transliterated) and the message names Ü and ï."""
    with pytest.raises(InvalidName) as caught:
        normalize_name("Ünïcode")
    message = caught.value.message
    assert "'Ü'" in message and "'ï'" in message
    assert "[a-z0-9_]" in message


@pytest.mark.parametrize("raw", ["\u212a", "add_\u212aey", "\u0130ndex"])
def test_normalize_name_does_not_fold_non_ascii_letters_into_ascii(raw: str) -> None:
    """The Kelvin sign lower-cases to `k` in Unicode; it is refused, not silently renamed."""
    with pytest.raises(InvalidName, match="outside"):
        normalize_name(raw)


def test_normalize_name_describes_invisible_characters_by_code_point() -> None:
    """A zero-width or control character is named as U+XXXX, not printed invisibly."""
    with pytest.raises(InvalidName, match="U\\+200B"):
        normalize_name("add\u200bindex")


_NEW_NAME = st.from_regex(r"\A[a-z0-9_]{1,100}\Z")


@given(name=_NEW_NAME, version=st.integers(min_value=0, max_value=10**14),
       width=st.integers(min_value=1, max_value=20), direction=st.sampled_from(["up", "down"]))
def test_any_valid_name_round_trips_through_format_and_parse(
    name: str, version: int, width: int, direction: str
) -> None:
    """format_filename then parse_filename gives back the version, name and direction."""
    parsed = parse_filename(format_filename(version, name, direction, width))  # type: ignore[arg-type]
    assert parsed is not None
    assert (parsed.version, parsed.name, parsed.direction) == (version, name, direction)
    assert len(parsed.version_text) == max(width, len(str(version)))


@given(st.text())
def test_parse_filename_never_raises(text: str) -> None:
    """Arbitrary text gives a ParsedName or None, never an exception."""
    parse_filename(text)


@given(st.text(max_size=400))
def test_normalize_name_returns_a_safe_name_or_raises_invalid_name(raw: str) -> None:
    """The result is `[a-z0-9_]+` of at most 100 characters; any other outcome is InvalidName."""
    try:
        name = normalize_name(raw)
    except InvalidName:
        return
    assert re.fullmatch(r"[a-z0-9_]+", name)
    assert len(name) <= MAX_NAME_LENGTH


@given(st.text(alphabet=st.characters(min_codepoint=0x80), min_size=1, max_size=5))
def test_a_name_with_a_non_ascii_character_that_is_not_a_space_is_refused(junk: str) -> None:
    """Unicode letters and digits are never mapped onto ASCII ones."""
    raw = f"add{junk}index"
    if all(c.isspace() for c in junk):
        assert normalize_name(raw) == "add_index"
    else:
        with pytest.raises(InvalidName):
            normalize_name(raw)
