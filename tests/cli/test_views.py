"""The pieces the views are made of: compact numbers, bars in eighths, ids shortened in their
middle, the screen read from the environment, tables that fit or say they do not, the
countdown of a wait."""

from __future__ import annotations

import io

import pytest

from llamux.cli._grid import Column, Row, fit, render, text_cell
from llamux.cli._screen import Screen, middle_ellipsis, width_of, wrap
from llamux.cli._status_view import bar, compact, used_of
from llamux.cli._waiting import CountdownClock


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (980, "980"),
        (9999, "9999"),
        (10_000, "10k"),
        (12_499, "12k"),
        (12_500, "13k"),
        (999_999, "1000k"),
        (1_000_000, "1.0M"),
        (1_250_000, "1.3M"),
        (15_000_000, "15M"),
    ],
)
def test_compact_is_the_dashboards(n: int, text: str) -> None:
    assert compact(n) == text


def test_used_figures_never_look_full_when_they_are_not() -> None:
    assert used_of(0, 1_000_000) == "0/1.0M"
    assert used_of(59_873, 60_000) == "59.8k/60k"
    assert used_of(60_000, 60_000) == "60k/60k"
    assert used_of(2, 900) == "2/900"


def test_a_bar_draws_only_what_rounds_to_a_share() -> None:
    assert bar(0, 30) == "░" * 10
    assert bar(2, 900) == "░" * 10  # 0.2% of ten cells: nothing
    assert bar(2, 30) == "▋" + "░" * 9  # 2/3 of a cell: five eighths
    assert bar(1, 5) == "██" + "░" * 8
    assert bar(899, 900) == "█" * 9 + "▉"  # nearly full is not full
    assert bar(900, 900) == bar(1000, 900) == "█" * 10
    assert bar(1, 0) == "█" * 10
    assert bar(2, 30, unicode=False) == "#" + "-" * 9
    assert bar(29, 30, unicode=False) == "#" * 9 + "-"


def test_an_id_is_shortened_in_its_middle_only_when_it_does_not_fit() -> None:
    id_ = "openrouter:meta-llama/llama-3.3-70b-instruct:free"
    assert middle_ellipsis(id_, len(id_)) == id_
    short = middle_ellipsis(id_, 30)
    assert (
        width_of(short) == 30
        and short.startswith("openrouter:meta")
        and short.endswith("instruct:free")
    )
    wide = middle_ellipsis("日本語のモデル名", 7)  # two columns a character
    assert wide.startswith("日") and wide.endswith("名") and "…" in wide and width_of(wide) <= 7


def test_wrap_breaks_between_words_only() -> None:
    text = "cooldown 25s: HTTP 503: https://status.example.com/incidents/12345 says so"
    for line in wrap(text, 20):
        assert width_of(line) <= 20
    assert "https://status.exam…" in wrap(text, 20)  # a word longer than a line: cut, marked
    assert wrap(text, 20, cut=False)[2] == "https://status.example.com/incidents/12345"
    assert wrap(text, None) == [text]
    assert wrap("warning: one two three four", 12, indent="  ") == [
        "warning: one",
        "  two three",
        "  four",
    ]


def test_the_screen_follows_columns_no_color_and_the_terminal() -> None:
    piped = Screen.of(io.StringIO(), {})
    assert piped == Screen(width=None, tty=False, color=False, unicode=True)
    assert Screen.of(io.StringIO(), {"COLUMNS": "80"}).width == 80
    tty = Screen.of(_Tty(), {"COLUMNS": "120"})
    assert tty.width == 120 and tty.tty and tty.color
    assert tty.paint("x", "bold red") == "\x1b[1;31mx\x1b[0m"
    assert not Screen.of(_Tty(), {"COLUMNS": "120", "NO_COLOR": "1"}).color
    assert not Screen.of(_Tty(), {"TERM": "dumb"}).color
    assert Screen(color=False).paint("x", "red") == "x"
    latin = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    assert Screen.of(latin, {}).unicode is False


def test_a_table_fits_by_wrapping_its_wrapping_columns_or_says_it_cannot() -> None:
    columns = [Column("endpoint"), Column("state", wraps=True)]
    rows = [Row((text_cell("groq:llama-3.3-70b-versatile"), text_cell("full (rpm; frees in 41s)")))]
    assert fit(columns, rows, None, boxed=True) == [28, 24]
    assert fit(columns, rows, 40, boxed=False) == [28, 10]
    assert fit(columns, rows, 30, boxed=False) is None  # the id would have to break: no
    lines = render(columns, rows, [28, 10], Screen(), boxed=False)
    assert lines[0] == "endpoint                      state"
    assert lines[1] == "groq:llama-3.3-70b-versatile  full (rpm;"
    assert all(len(line) <= 40 for line in lines)
    boxed = render(columns, rows, [28, 24], Screen(unicode=False), boxed=True)
    assert boxed[0].startswith("+-") and boxed[1].startswith("| endpoint")


def test_a_countdown_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    monkeypatch.setattr("time.monotonic", lambda: 100.0 + sum(slept))
    err = _Tty()
    monkeypatch.setattr("sys.stderr", err)
    clock = CountdownClock(Screen(width=80, tty=True, color=True), lambda: "groq rpm full")
    clock.sleep(2.5)
    shown = err.getvalue()
    assert "\r\x1b[2mwaiting 3 s for capacity (groq rpm full)...\x1b[0m\x1b[K" in shown
    assert "waiting 2 s" in shown and "waiting 1 s" in shown and shown.endswith("\r\x1b[K")
    assert sum(slept) == pytest.approx(2.5)
    quiet = _Tty()
    monkeypatch.setattr("sys.stderr", quiet)
    CountdownClock(Screen(tty=False), lambda: "never asked").sleep(2.0)
    assert quiet.getvalue() == "" and sum(slept) == pytest.approx(4.5)
