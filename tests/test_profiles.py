"""Mapping profiles: model round trip, value readers (dates, units, doses), the committed messy centre
export (examples/profile/) read back to the synthetic registry, every bad value reported, --infer drafts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ildstudy.cli import run as cli
from ildstudy.data import load_registry
from ildstudy.data.profiles import load_profile, parse_profile, read_with_profile
from ildstudy.data.profiles.infer import infer_profile
from ildstudy.data.profiles.values import read_date, read_dose, read_number, to_unit
from ildstudy.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "profile"


@pytest.fixture(scope="module")
def canonical(tmp_path_factory):
    """The synthetic registry (seed 2019, demo size) that examples/profile/export was written from."""
    from ildstudy.synth import write_registry

    folder = tmp_path_factory.mktemp("reg") / "registry"
    write_registry(folder, seed=2019)
    return load_registry(folder)


def test_profile_toml_round_trip():
    profile = load_profile(EXAMPLE / "profile.toml")
    assert parse_profile(profile.to_toml()) == profile


@pytest.mark.parametrize("text, why", [
    ('[tables.patients]\nfile = "p.csv"\nbogus = 1\n[tables.patients.columns]\npatient_id = "x"', "bogus"),
    ('[tables.pft]\nfile = "p.csv"\n[tables.pft.columns]\npatient_id = "a"\ntest_date = "b"\nfvc_l = { from = "c", unit = "fraction" }',
     "unit 'fraction' is not allowed"),
    ('[tables.pft]\nfile = "p.csv"\n[tables.pft.columns]\npatient_id = "a"', "required column(s) not mapped: test_date"),
    ('[tables.pft]\nfile = "p.csv"\n[tables.pft.columns]\npatient_id = "a"\ntest_date = { from = "b", date = "dmy" }',
     "date must be one of"),
])
def test_bad_profiles_are_refused_naming_the_key(text, why):
    with pytest.raises(DataError) as exc:
        parse_profile(text, require_all_tables=False)
    assert why in str(exc.value)


@pytest.mark.parametrize("text, fmt, expected", [
    ("03.04.2019", "day-first", "2019-04-03"), ("3/4/2019", "day-first", "2019-04-03"),
    ("04/03/2019", "month-first", "2019-04-03"), ("2019-04-03 10:22", "iso", "2019-04-03"),
    # Excel: =DATE(2019,4,3) shows serial 43558 in the 1900 date system
    ("43558", "excel-serial", "2019-04-03"), ("03 Apr 2019", "%d %b %Y", "2019-04-03"),
])
def test_dates_in_declared_formats(text, fmt, expected):
    assert read_date(text, fmt) == (expected, None)


@pytest.mark.parametrize("text, fmt", [("31.02.2019", "day-first"), ("13/13/2019", "month-first"),
                                       ("03.04.19", "day-first"), ("2019-04-03", "day-first"), ("x", "excel-serial")])
def test_bad_dates_give_a_reason(text, fmt):
    value, why = read_date(text, fmt)
    assert value is None and why


def test_units_and_numbers():
    assert to_unit(2850, "mL") == 2.85 and to_unit(0.755, "fraction") == 75.5 and to_unit(1.821, "m") == 182.1
    assert to_unit(129, "g/L") == 12.9
    assert read_number("2,85", ",") == (2.85, None)
    assert read_number("2,85", ".")[1].startswith("is not a number (it has a decimal comma")


@pytest.mark.parametrize("text, mg_per_day", [
    ("10mg", 10), ("7.5 mg daily", 7.5), ("5mg bid", 10), ("5 mg BID", 10), ("500 mg tid", 1500), ("250mg qid", 1000),
    ("20 mg every other day", 10), ("20 mg qod", 10), ("15 mg weekly", 15 / 7), ("1 g twice daily", 2000),
    ("7,5 mg tgl.", 7.5), ("10", 10), ("40 mg once daily", 40), ("5 mg po bid", 10),
])
def test_dose_parser(text, mg_per_day):
    value, why = read_dose(text)
    assert why is None and value == pytest.approx(mg_per_day, rel=1e-12)


@pytest.mark.parametrize("text", ["5-10 mg", "5 to 10 mg daily", "2 tablets", "10 mg as needed", "mg", "1,000 mg"])
def test_dose_parser_refuses_what_is_not_clear(text):
    value, why = read_dose(text)
    assert value is None and why


def test_committed_centre_export_reads_back_to_the_synthetic_registry(canonical):
    registry = load_registry(EXAMPLE / "export", profile=EXAMPLE / "profile.toml")
    for name, frame in canonical.tables.items():
        pd.testing.assert_frame_equal(registry[name], frame)
    assert registry.sha256() == canonical.sha256()


def _corrupt(tmp_path: Path) -> Path:
    raw = tmp_path / "export"
    shutil.copytree(EXAMPLE / "export", raw)
    med = raw / "Medikation.csv"
    lines = med.read_text(encoding="cp1252").splitlines(keepends=True)
    cells = lines[2].split(";")
    cells[4] = "5-10 mg"
    lines[2] = ";".join(cells)
    cells = lines[3].split(";")
    cells[2] = "31.02.2010"
    lines[3] = ";".join(cells)
    med.write_text("".join(lines), encoding="cp1252")
    pat = raw / "Patienten.csv"
    text = pat.read_text(encoding="cp1252").splitlines(keepends=True)
    text[0] = text[0].rstrip("\r\n") + ";Station\r\n"
    text[1:] = [t.rstrip("\r\n") + ";B3\r\n" for t in text[1:]]
    pat.write_text("".join(text), encoding="cp1252")
    return raw


def test_every_bad_value_and_unmapped_column_is_reported(tmp_path):
    raw = _corrupt(tmp_path)
    _, problems = read_with_profile(load_profile(EXAMPLE / "profile.toml"), raw)
    text = [str(p) for p in problems]
    assert "Medikation.csv:3: Dosierung: '5-10 mg' is a range of doses; give one dose per row " \
           "(a dose change is a new row)" in text
    assert any(t.startswith("Medikation.csv:4: Beginn: '31.02.2010' is not a real date") for t in text)
    assert any(p.file == "Patienten.csv" and p.column == "Station" and p.severity == "warning" for p in problems)


def test_import_cli_exits_2_and_writes_nothing_on_bad_values(tmp_path, capsys):
    raw = _corrupt(tmp_path)
    code = cli(["import", str(EXAMPLE / "profile.toml"), str(raw), "--out", str(tmp_path / "reg")])
    assert code == 2 and not (tmp_path / "reg").exists()
    assert "Medikation.csv:3: Dosierung: '5-10 mg' is a range of doses" in capsys.readouterr().err


def test_import_cli_writes_a_canonical_registry(tmp_path, canonical):
    code = cli(["import", str(EXAMPLE / "profile.toml"), str(EXAMPLE / "export"), "--out", str(tmp_path / "reg")])
    assert code == 0
    assert load_registry(tmp_path / "reg").sha256() == canonical.sha256()
    assert cli(["validate", str(EXAMPLE / "export"), "--profile", str(EXAMPLE / "profile.toml")]) == 0


def test_infer_drafts_the_example_profile():
    text, notes = infer_profile(EXAMPLE / "export")
    draft = parse_profile(text)
    hand = load_profile(EXAMPLE / "profile.toml")
    for table, tmap in hand.tables.items():
        got = draft.tables[table]
        assert got.file == tmap.file and got.delimiter == tmap.delimiter
        for col, cmap in tmap.columns.items():
            assert got.columns[col].source == cmap.source, (table, col)
            assert got.columns[col].date == cmap.date and got.columns[col].unit == cmap.unit, (table, col)
    assert draft.tables["medications"].columns["daily_dose_mg"].dose
    assert draft.tables["patients"].columns["sex"].map == {"1": "?", "2": "?"}   # codes are never guessed
    assert any("Geschlecht: codes 1, 2 need a meaning" in n for n in notes)


def test_infer_says_which_date_columns_are_ambiguous(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "visits.csv").write_text("patient_id,test_date,fvc_pct_pred\nP1,03/04/2019,80\nP1,05/06/2019,82\n"
                                    "P2,25/06/2019,70\n")
    (raw / "pats.csv").write_text("patient_id,sex,birth_date\nP1,F,03/04/1960\nP2,M,05/06/1970\n")
    text, notes = infer_profile(raw)
    assert 'test_date = { from = "test_date", date = "day-first" }' in text    # 25/06 shows day-first
    assert any(n.startswith("pats.csv: birth_date: ambiguous") for n in notes)
    assert "birth_date" in text.split("ambiguous")[0].splitlines()[-1]


def test_infer_cli_writes_a_draft_and_never_overwrites(tmp_path):
    draft = tmp_path / "draft.toml"
    assert cli(["import", "--infer", str(EXAMPLE / "export"), "--out", str(draft)]) == 0
    assert draft.read_text().startswith("# Draft mapping profile")
    assert cli(["import", "--infer", str(EXAMPLE / "export"), "--out", str(draft)]) == 2
