"""Typed study results (issue 16): each result's ``to_dict()`` is its results.json block, one serializer puts
them together, one JSON cleaner and one p-value formatter, and the ``ildstudy`` front door.

Numbers here come from the FAKE fixture of ``report_fixtures`` (made-up data run through the real
adverse-event and discontinuation functions); the tests check structure and round trips, not results.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from report_fixtures import ARMS, fake_study_result

from ildstudy._json import frame_records, plain
from ildstudy.analysis.serialize import SCHEMA_VERSION, results_document, study_tables
from ildstudy.report.exports import FLOAT_DIGITS, canonical_json
from ildstudy.report.formatting import format_p


@pytest.fixture(scope="module")
def result():
    return fake_study_result()


def test_results_document_is_made_of_each_results_to_dict(result):
    doc = results_document(result)
    assert list(doc) == ["schema_version", "protocol", "protocol_sha256", "data_sha256", "arms", "reference_arm",
                         "attrition", "table1", "outcomes", "adverse_events", "discontinuation", "warnings"]
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["adverse_events"] == result.adverse_events.to_dict()
    assert doc["discontinuation"] == result.discontinuation.to_dict()
    assert doc["table1"] == result.table1.records()
    for name, o in result.outcomes.items():
        assert doc["outcomes"][name] == o.to_dict()
    assert {a: v["n"] for a, v in doc["arms"].items()} == ARMS
    assert result.results == doc  # the property is the same one serializer


def test_results_document_round_trips_through_json(result):
    doc = results_document(result)
    back = json.loads(canonical_json(doc))
    assert back == plain(doc, FLOAT_DIGITS)  # JSON adds nothing and loses nothing beyond the fixed digits
    assert canonical_json(back) == canonical_json(doc)


def test_outcome_to_dict_round_trips_its_tables(result):
    o = result.outcomes["fvc_pct_pred"]
    d = o.to_dict()
    for key in ("marginal_means", "change_from_baseline", "arm_differences"):
        frame = pd.DataFrame(d[key])
        pd.testing.assert_frame_equal(frame, getattr(o, key).reset_index(drop=True), check_dtype=False)
    assert d["model"] is o.model


def test_attrition_block_leaves_out_the_closing_row(result):
    doc = results_document(result)
    assert [r["step"] for r in doc["attrition"]] == list(result.attrition["step"].iloc[:-1])
    last = doc["attrition"][-1]
    assert last["remaining"] == {"AZA": 66, "MMF": 44} and last["remaining_total"] == 110


def test_study_tables_in_order_from_each_results_tables(result):
    tables = study_tables(result)
    expected = ["attrition", "table1"] + [f"{n}_{k}" for n in result.outcomes for k in
                                          ("fixed_effects", "marginal_means", "change_from_baseline",
                                           "arm_differences")]
    expected += ["adverse_events_by_arm", "adverse_events_by_category", "discontinuation_at_months"]
    assert list(tables) == expected
    assert tables["adverse_events_by_category"].equals(result.adverse_events.by_category_wide())
    assert list(result.tables) == expected


def test_plain_is_the_one_json_cleaner():
    value = {"a": np.float64(1 / 3), "b": [np.int64(2), float("nan"), pd.NA, np.bool_(True)],
             "c": pd.DataFrame({"x": [1.5, np.inf]})}
    assert plain(value) == {"a": 1 / 3, "b": [2, None, None, True], "c": [{"x": 1.5}, {"x": None}]}
    assert plain(value, 3)["a"] == 0.333
    assert frame_records(pd.DataFrame({"x": [2 / 3]}), 2) == [{"x": 0.67}]
    with pytest.raises(TypeError):
        plain(object())
    import ildstudy.report.exports as exports

    assert not hasattr(exports, "_clean")


@pytest.mark.parametrize(("p", "style", "phrase", "text"), [
    (0.0357, "table", False, "0.036"), (0.0357, "prose", False, "0.04"), (0.0004, "table", True, "p < 0.001"),
    (0.9995, "table", True, "p > 0.999"), (0.2, "prose", True, "p = 0.20"), (0.0496, "prose", False, "0.050"),
    (None, "table", False, "\u2014"),
])
def test_one_p_value_formatter(p, style, phrase, text):
    assert format_p(p, style, phrase=phrase) == text


def test_cli_summary_uses_the_same_p_formatter():
    from ildstudy.cli.study_commands import _p

    assert _p(0.0357) == format_p(0.0357, phrase=True) == "p = 0.036"
    assert _p(0.0001) == "p < 0.001" and _p(float("nan")) == "p not available"


def test_front_door_is_lazy_and_complete():
    code = ("import sys, ildstudy; heavy = [m for m in ('pandas', 'ildstudy.analysis', 'ildstudy.report', "
            "'ildstudy.lmm') if m in sys.modules]; print(heavy); "
            "names = {'run_study', 'write_outputs', 'fit_lmm', 'load_registry', 'load_protocol'}; "
            "assert names <= set(ildstudy.__all__) and names <= set(dir(ildstudy)), dir(ildstudy); "
            "ildstudy.run_study; assert 'ildstudy.analysis.study' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_front_door_names_are_the_library_functions():
    import ildstudy
    from ildstudy.analysis.study import run_study
    from ildstudy.data import load_registry
    from ildstudy.lmm import fit_lmm
    from ildstudy.protocol import load_protocol
    from ildstudy.report.outputs import write_study_outputs

    assert ildstudy.run_study is run_study and ildstudy.write_outputs is write_study_outputs
    assert ildstudy.fit_lmm is fit_lmm and ildstudy.load_registry is load_registry
    assert ildstudy.load_protocol is load_protocol
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ildstudy.nope  # noqa: B018
