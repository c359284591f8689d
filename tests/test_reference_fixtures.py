"""Sanity checks on the committed lme4/lmerTest/emmeans reference fixtures (tests/reference/lmm/).

These tests never run R: they check that every fixture parses, records the versions that produced it, names a
data file that exists, and that the data file has the rows the fit used. The engine itself is compared with the
fixtures in tests/test_lmm_reference.py.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

REF = Path(__file__).parent / "reference"
LMM = REF / "lmm"
FIXTURES = sorted(LMM.glob("*.json"))

VERSION_KEYS = ("r_version", "lme4_version", "lmerTest_version", "emmeans_version")
REQUIRED = (
    "case", "source", "data", "formula", "factors", "method", "n_obs", "n_groups", "group",
    "loglik", "aic", "bic", "singular", "theta", "fixed_effects", "random_effects", "residual_sd",
)
# At least these cases (issue 4, item 6).
EXPECTED_CASES = {
    "sleepstudy_reml", "sleepstudy_ml", "sleepstudy_intercept_reml", "orthodont_reml", "orthodont_ml",
    "ild110_reml", "ild110_ml", "singular_slope_reml", "singular_intercept_reml", "visits_categorical_reml",
    "unbalanced_reml", "unbalanced_ml",
}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _formula_columns(formula: str, columns: list[str]) -> list[str]:
    names = set(re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", formula))
    return [c for c in columns if c in names]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def test_fixture_set_is_complete():
    assert {p.stem for p in FIXTURES} >= EXPECTED_CASES
    assert (REF / "lmm_reference.R").is_file()
    assert (REF / "README.md").is_file()


def test_fixtures_are_small():
    total = sum(p.stat().st_size for p in LMM.rglob("*") if p.is_file())
    assert total < 1_000_000


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_is_well_formed(path: Path):
    fx = _load(path)
    for key in REQUIRED:
        assert key in fx, f"{path.name}: missing {key}"
    assert fx["case"] == path.stem
    assert fx["source"] == "tests/reference/lmm_reference.R"
    for key in VERSION_KEYS:
        assert isinstance(fx.get(key), str) and fx[key], f"{path.name}: {key} not recorded"
    assert fx["method"] in ("REML", "ML")
    if fx["method"] == "REML":
        assert _finite(fx["reml_criterion"]) and "deviance" not in fx
        assert fx["reml_criterion"] == pytest.approx(-2 * fx["loglik"], rel=1e-12)
    else:
        assert _finite(fx["deviance"]) and "reml_criterion" not in fx
        assert fx["deviance"] == pytest.approx(-2 * fx["loglik"], rel=1e-12)
    assert isinstance(fx["singular"], bool)

    terms = [row["term"] for row in fx["fixed_effects"]]
    assert terms[0] == "(Intercept)" and len(set(terms)) == len(terms)
    for row in fx["fixed_effects"]:
        for key in ("estimate", "se", "df", "t", "p"):
            assert _finite(row[key]), f"{path.name}: {row['term']}.{key}"
        assert row["t"] == pytest.approx(row["estimate"] / row["se"], rel=1e-9)

    re_ = fx["random_effects"]
    k = len(re_["terms"])
    assert len(re_["sd"]) == k and len(re_["corr"]) == k and all(len(r) == k for r in re_["corr"])
    assert len(fx["theta"]) == k * (k + 1) // 2
    assert fx["residual_sd"] > 0

    for block in fx.get("emmeans", []):
        assert {"specs", "by", "at", "means", "contrasts"} <= block.keys()
        for m in block["means"]:
            assert block["specs"] in m and block["by"] in m
            for key in ("emmean", "se", "df", "lower_cl", "upper_cl"):
                assert _finite(m[key])
        for c in block["contrasts"]:
            assert block["by"] in c
            for key in ("contrast",):
                assert isinstance(c[key], str)
            for key in ("estimate", "se", "df", "t_ratio", "p_value"):
                assert _finite(c[key])


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_data_matches(path: Path):
    fx = _load(path)
    data = LMM / "data" / fx["data"]
    assert data.is_file(), f"{path.name}: {data} missing"
    df = pd.read_csv(data, dtype=str, keep_default_na=False, na_values=[""])
    used = _formula_columns(fx["formula"], list(df.columns))
    assert fx["group"] in used
    complete = df.dropna(subset=used)
    assert len(df) == fx.get("n_rows_in_file", len(df))
    assert len(complete) == fx["n_obs"]
    assert complete[fx["group"]].nunique() == fx["n_groups"]
    for col, levels in fx["factors"].items():
        assert col in df.columns
        assert set(complete[col]) == set(levels), f"{path.name}: levels of {col}"
    if "ranef" in fx:
        assert sorted(fx["ranef"]["levels"]) == sorted(set(complete[fx["group"]]))
