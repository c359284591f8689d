"""Output safety and stability: formula neutralising, small-cell suppression, canonical JSON, atomic dirs."""

import math

import numpy as np
import pandas as pd
import pytest

from ildstudy.report.exports import (
    atomic_output_dir,
    canonical_json,
    neutralise_formulas,
    suppress_small_counts,
    write_table,
)


def test_formula_like_strings_are_neutralised_numbers_are_not():
    df = pd.DataFrame({"a": ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "AZA - MMF", None], "x": [-1.5, 2, 3, 4, 5, 6]})
    out = neutralise_formulas(df)
    assert out["a"].tolist()[:5] == ["'=1+1", "'+cmd", "'-2+3", "'@SUM(A1)", "AZA - MMF"]
    assert out["a"].iloc[5] is None
    assert out["x"].tolist() == df["x"].tolist()


def test_csv_and_xlsx_exports_neutralise(tmp_path):
    from openpyxl import load_workbook

    write_table(pd.DataFrame({"v": ["=HYPERLINK(\"x\")"]}), tmp_path / "t")
    assert "'=HYPERLINK" in (tmp_path / "t.csv").read_text()
    ws = load_workbook(tmp_path / "t.xlsx").active
    assert ws["A2"].value.startswith("'=")


def test_small_counts_suppressed_in_numbers_and_text():
    df = pd.DataFrame({"n": [0, 3, 5, 12], "AZA": ["4 (6.1%)", "22 (33.3%)", "56.1 (12.0)", None]})
    out = suppress_small_counts(df, ["n", "AZA"], 5)
    assert out["n"].tolist() == [0, "<5", 5, 12]
    assert out["AZA"].tolist()[:2] == ["<5", "22 (33.3%)"]


def test_canonical_json_is_stable_and_strict():
    obj = {"b": np.float64(1 / 3), "a": [np.int64(2), float("nan"), math.inf], "c": np.bool_(True)}
    text = canonical_json(obj)
    assert text == canonical_json(obj)
    assert '"b": 0.3333333333' in text and "NaN" not in text and "null" in text
    assert text.index('"b"') < text.index('"a"')  # insertion order kept


def test_atomic_dir_replaces_only_on_success(tmp_path):
    final = tmp_path / "out"
    with atomic_output_dir(final) as d:
        (d / "report.html").write_text("v1")
    assert (final / "report.html").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(final) as d:
            (d / "report.html").write_text("half")
            raise RuntimeError("interrupted")
    assert (final / "report.html").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_percentages_go_with_their_suppressed_counts():
    df = pd.DataFrame({"AZA_patients": [3, 22], "AZA_percent": [4.5, 33.3]})
    out = suppress_small_counts(df, ["AZA_patients"], 5, {"AZA_percent": "AZA_patients"})
    assert out["AZA_percent"].tolist() == ["<5", 33.3]
