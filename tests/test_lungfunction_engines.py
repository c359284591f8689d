"""The lung-function derivation ([lung_function], cohort/lungfunction.py) on PostgreSQL: the recomputed % predicted,
z-scores and the flags equal the in-process (DuckDB) derivation on the same registry."""

from __future__ import annotations

import pandas as pd
import pytest

from ildstudy.cli import run as cli
from ildstudy.cohort import build_cohort
from ildstudy.data import load_registry
from ildstudy.protocol import builtin_protocol_text, parse_protocol
from ildstudy.synth import write_registry
from protocol_helpers import with_lung


@pytest.mark.postgres
def test_postgresql_derivation_equals_duckdb(tmp_path, pg_schema):
    folder = tmp_path / "registry"
    write_registry(folder, n_patients=120, seed=11, fmt="csv")
    text = builtin_protocol_text("huapaya2019").replace('"fvc_pct_pred"', '"fvc_zscore"')
    protocol = parse_protocol(with_lung(text, 'reference_equation = "gli_global_2022"\nhb_correction = true'))
    assert cli(["load", str(folder), "--db", pg_schema]) == 0
    local = build_cohort(load_registry(folder), protocol)
    remote = build_cohort(pg_schema, protocol)
    key = ["patient_id", "outcome", "months"]
    a = local.outcomes.sort_values(key).reset_index(drop=True)
    b = remote.outcomes.sort_values(key).reset_index(drop=True)
    assert set(a["outcome"]) >= {"fvc_zscore", "dlco_pct_pred"}
    pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(local.lung_function.flags, remote.lung_function.flags, check_dtype=False)
    assert local.lung_function.flags["n"].sum() > 0  # the synth's tests without raw values or height are flagged
    pd.testing.assert_frame_equal(local.attrition, remote.attrition, check_dtype=False)
