"""Issue 17, item 7: junk refused at the header, warnings grouped, extra XLSX sheets named, "today" in any time zone.

Cases from the issue: a 200 MB junk CSV (refused before its body is parsed), 10,000 unknown columns (a
bounded number of warning lines, not 10,003), an XLSX with an extra sheet (a warning naming it), and
"today" under the machine time zones at both ends of the calendar (UTC+14 and UTC-12).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ildstudy.cli import run
from ildstudy.data import coerce, readers
from ildstudy.data.coerce import FUTURE_DATE, coerce_column, latest_today
from ildstudy.data.readers import MAX_HEADER_NAMES, read_raw_table
from ildstudy.data.schema import TABLES_BY_NAME

PFT = TABLES_BY_NAME["pft"]
PATIENTS = TABLES_BY_NAME["patients"]
MB = 1 << 20


@pytest.fixture
def body_never_read(monkeypatch):
    """Make reading or parsing a CSV body fail the test: a refusal must come from the header alone."""
    calls: list[str] = []

    def forbidden(name):
        def fail(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called: the body was read although the header is junk")
        return fail

    monkeypatch.setattr(readers, "_read_body", forbidden("_read_body"))
    monkeypatch.setattr(readers, "_parse_csv", forbidden("_parse_csv"))
    monkeypatch.setattr(readers, "_is_utf8", forbidden("_is_utf8"))
    return calls


def _write_repeated(path: Path, block: bytes, size: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)


def test_200_mb_text_junk_is_refused_at_the_header(tmp_path, body_never_read):
    # printable junk with commas and line breaks (no NUL byte, so only the header check can refuse it)
    text = base64.b64encode(os.urandom(3 * MB // 4)).replace(b"+", b",").replace(b"/", b"\n")
    path = tmp_path / "pft.csv"
    _write_repeated(path, text, 200 * MB)
    assert path.stat().st_size >= 199 * MB
    raw, problems = read_raw_table(PFT, path)
    assert raw is None and body_never_read == []
    [problem] = problems
    assert problem.file == "pft.csv" and problem.row == 1
    assert "is not a header row: none of the pft columns were found" in problem.problem
    first = text.split(b"\n", 1)[0].decode().split(",")[0]
    assert problem.value.startswith(first[:20])  # names the first columns found


def test_200_mb_binary_junk_is_refused_at_the_start(tmp_path, body_never_read):
    path = tmp_path / "pft.csv"
    _write_repeated(path, os.urandom(MB), 200 * MB)
    raw, problems = read_raw_table(PFT, path)
    assert raw is None and body_never_read == []
    assert len(problems) == 1 and problems[0].file == "pft.csv"


def test_a_header_without_line_break_is_refused(tmp_path, body_never_read):
    path = tmp_path / "pft.csv"
    _write_repeated(path, b"patient_id" + b"x" * (MB - 10), 8 * MB)  # row 1 alone is 8 MiB
    raw, problems = read_raw_table(PFT, path)
    assert raw is None and body_never_read == []
    assert "longer than 4 MiB without a line break" in problems[0].problem


def test_a_good_header_still_reads_the_body(tmp_path):
    path = tmp_path / "pft.csv"
    path.write_text("patient_id,test_date,fvc_pct_pred\nP1,2019-01-01,70\n" + "P2,2019-02-01,65\n" * 40_000)
    raw, problems = read_raw_table(PFT, path)
    assert problems == [] and len(raw.frame) == 40_001
    assert list(raw.row_numbers()[:2]) == [2, 3]


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("junk") / "registry"
    assert run(["synth", "--out", str(folder), "--patients", "20", "--seed", "3"]) == 0
    return folder


def test_validate_refuses_a_junk_table_naming_file_and_columns(registry, tmp_path, capsys, body_never_read):
    import shutil

    folder = tmp_path / "registry"
    shutil.copytree(registry, folder)
    (folder / "pft.csv").write_bytes(b"\x8a\xf3junk,more junk,zz\n" + b"q,w,e\n" * 1000)
    assert run(["validate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "pft.csv:1:" in err and "is not a header row" in err and "junk,more junk,zz" in err


def test_10000_unknown_columns_give_one_grouped_warning(registry, tmp_path, capsys):
    import shutil

    folder = tmp_path / "registry"
    shutil.copytree(registry, folder)
    pft = pd.read_csv(folder / "pft.csv", dtype=str, keep_default_na=False)
    extra = pd.DataFrame({f"extra_{i}": ["1"] * len(pft) for i in range(10_000)})
    pd.concat([pft, extra], axis=1).to_csv(folder / "pft.csv", index=False)
    assert run(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 40, out[-2000:]  # the issue saw 10,003 lines
    assert "10000 unknown columns, ignored" in out
    raw, _ = read_raw_table(PFT, folder / "pft.csv")
    unknown = [p for p in raw.problems if "unknown column" in p.problem]
    assert len(unknown) == 1
    assert f"and {10_000 - MAX_HEADER_NAMES} more" in unknown[0].problem
    assert "'extra_0'" in unknown[0].problem and "'extra_9'" in unknown[0].problem
    assert "'extra_10'" not in unknown[0].problem


def test_a_few_unknown_columns_are_still_named_one_by_one(tmp_path):
    path = tmp_path / "pft.csv"
    path.write_text("patient_id,test_date,site,fvc_pct_prd\nP1,2019-01-01,A,70\n")
    raw, _ = read_raw_table(PFT, path)
    assert [(p.column, p.severity) for p in raw.problems] == [("site", "warning"), ("fvc_pct_prd", "warning")]
    assert "did you mean 'fvc_pct_pred'?" in raw.problems[1].problem


def test_repeated_and_unnamed_columns_are_grouped_too(tmp_path):
    path = tmp_path / "pft.csv"
    n = 3 * MAX_HEADER_NAMES
    path.write_text("patient_id,test_date" + ",test_date" * n + "," * n + "\n"
                    "P1,2019-01-01" + ",2019-01-01" * n + ",x" * n + "\n")
    raw, _ = read_raw_table(PFT, path)
    repeated = [p for p in raw.problems if "repeat" in p.problem or "more than once" in p.problem]
    unnamed = [p for p in raw.problems if "no name" in p.problem]
    assert len(repeated) == 1 and f"{n} columns repeat" in repeated[0].problem
    assert len(unnamed) == 1 and f"{n} columns have values but no name" in unnamed[0].problem


def test_print_problems_caps_repeated_warnings_of_one_kind():
    import io

    from rich.console import Console

    from ildstudy.cli.data_commands import print_problems
    from ildstudy.errors import Problem

    problems = [Problem("pft.csv", 1, f"c{i}", None, f"unknown column, ignored (hint {i})", "warning")
                for i in range(300)]
    console = Console(file=io.StringIO(), width=160)
    print_problems(console, problems)
    text = console.file.getvalue()
    assert "c19" in text and "c20 " not in text
    assert "and 280 more like 'unknown column, ignored'" in text
    assert len(text.splitlines()) < 40


# -- XLSX sheets ------------------------------------------------------------------------------------

def test_extra_xlsx_sheets_are_named_in_a_warning(tmp_path):
    path = tmp_path / "pft.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as book:
        pd.DataFrame({"patient_id": ["P1"], "test_date": ["2019-01-01"]}).to_excel(book, sheet_name="tests", index=False)
        pd.DataFrame({"note": ["see sheet 1"]}).to_excel(book, sheet_name="Notes", index=False)
        pd.DataFrame().to_excel(book, sheet_name="Sheet3", index=False)
    raw, fatal = read_raw_table(PFT, path)
    assert fatal == [] and len(raw.frame) == 1
    sheets = [p for p in raw.problems if "sheet" in p.problem]
    assert [p.problem for p in sheets] == [
        "sheet 'Notes' is ignored: only the first sheet, 'tests', is read",
        "sheet 'Sheet3' is ignored: only the first sheet, 'tests', is read",
    ]
    assert all(p.severity == "warning" and p.file == "pft.xlsx" for p in sheets)


def test_a_single_sheet_workbook_gives_no_sheet_warning(tmp_path):
    path = tmp_path / "pft.xlsx"
    pd.DataFrame({"patient_id": ["P1"], "test_date": ["2019-01-01"]}).to_excel(path, index=False)
    raw, fatal = read_raw_table(PFT, path)
    assert fatal == [] and raw.problems == ()


# -- "today" ----------------------------------------------------------------------------------------

def _future_mask(dates: list[str], today: dt.date):
    _, bad = coerce_column(pd.Series(dates, dtype="string[pyarrow]"), PFT.column("test_date"), pd.Timestamp(today))
    return list(bad.get(FUTURE_DATE, [False] * len(dates)))


@pytest.mark.parametrize("utc_now", [dt.datetime(2024, 3, 10, 0, 5, tzinfo=dt.timezone.utc),
                                     dt.datetime(2024, 3, 10, 11, 30, tzinfo=dt.timezone.utc),
                                     dt.datetime(2024, 3, 10, 23, 55, tzinfo=dt.timezone.utc)])
def test_today_anywhere_on_earth_is_never_after_today(utc_now, monkeypatch):
    from zoneinfo import ZoneInfo

    monkeypatch.setattr(coerce, "_utc_now", lambda: utc_now)
    today = latest_today()
    assert today == dt.date(2024, 3, 11)
    # the calendar's two ends: Kiritimati (UTC+14) is a day ahead of Baker Island (UTC-12) or more
    ahead = utc_now.astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    behind = utc_now.astimezone(ZoneInfo("Etc/GMT+12")).date()
    assert _future_mask([str(ahead), str(behind), "2024-03-12"], today) == [False, False, True]


def test_coerce_table_uses_the_utc_clock(tmp_path, monkeypatch):
    monkeypatch.setattr(coerce, "_utc_now", lambda: dt.datetime(2030, 6, 1, 12, tzinfo=dt.timezone.utc))
    path = tmp_path / "pft.csv"
    path.write_text("patient_id,test_date\nP1,2030-06-02\nP2,2030-06-03\n")
    raw, _ = read_raw_table(PFT, path)
    _, problems = coerce.coerce_table(raw)
    assert [(p.row, p.problem) for p in problems] == [(3, FUTURE_DATE)]


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "Etc/GMT+12", "UTC"])
def test_today_does_not_depend_on_the_machine_time_zone(tz):
    code = ("import time, datetime as dt; time.tzset(); from ildstudy.data.coerce import latest_today; "
            "print(latest_today().isoformat(), dt.date.today().isoformat())")
    before = dt.datetime.now(dt.timezone.utc).date()
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TZ": tz},
                          capture_output=True, text=True, timeout=120, check=True)
    after = dt.datetime.now(dt.timezone.utc).date()
    latest, local = proc.stdout.split()
    assert dt.date.fromisoformat(latest) in {before + dt.timedelta(days=1), after + dt.timedelta(days=1)}
    assert dt.date.fromisoformat(local) <= dt.date.fromisoformat(latest)  # the machine's date is never refused


def test_a_header_without_a_final_line_break_is_a_table_with_no_rows(tmp_path):
    path = tmp_path / "pft.csv"
    path.write_bytes(b"patient_id,test_date")  # was "cannot be read as CSV" before the header was read first
    raw, fatal = read_raw_table(PFT, path)
    assert fatal == [] and len(raw.frame) == 0 and list(raw.frame.columns) == ["patient_id", "test_date"]
