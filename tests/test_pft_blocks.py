"""The pft table derived in blocks (issue 13: 13.8 million tests at 1,000,000 patients did not fit in memory at
once): the stored table and the cohort equal the one-block derivation, the counts and examples exactly, the pooled
means and SDs of recorded - recomputed to floating-point summation order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ildstudy.cohort import build_cohort, pft_store
from ildstudy.data.load import registry_from_frames
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol
from ildstudy.synth import generate_registry
from protocol_helpers import with_lung


@pytest.fixture(scope="module")
def registry():
    frames, _ = generate_registry(250, np.random.default_rng(11), load_protocol("huapaya2019"))
    frames = {k: v.copy() for k, v in frames.items()}
    pts, pft = frames["patients"], frames["pft"]
    pts.loc[pts.index[:7], "height_cm"] = np.nan  # flags every test of these patients: examples in many blocks
    pft.loc[pft.index[5:400:37], "fvc_l"] = np.nan
    pft.loc[pft.index[10:900:53], "dlco"] = np.nan
    return registry_from_frames(frames)


PROTOCOLS = {
    "check_equation": lambda: load_protocol("huapaya2019"),  # recorded values kept, compared per year
    "recomputed": lambda: parse_protocol(with_lung(builtin_protocol_text("huapaya2019"),
                                                   'reference_equation = "gli_global_2022"\n')),
}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_blocks_give_the_one_block_derivation(registry, monkeypatch, name):
    protocol = PROTOCOLS[name]()
    one = build_cohort(registry, protocol)
    n_tests = len(registry.tables["pft"])
    monkeypatch.setattr(pft_store, "BLOCK_ROWS", 97)  # many blocks, not aligned to patients
    calls = []
    combine = pft_store.combine_derivations
    monkeypatch.setattr(pft_store, "combine_derivations", lambda parts: calls.append(len(parts)) or combine(parts))
    many = build_cohort(registry, protocol)
    assert calls == [-(-n_tests // 97)]

    for table in ("patients", "outcomes", "adverse_events", "attrition", "excluded"):
        pd.testing.assert_frame_equal(getattr(many, table), getattr(one, table))
    a, b = one.lung_function, many.lung_function
    assert not a.flags.empty and len(a.examples) > 3
    pd.testing.assert_frame_equal(b.flags, a.flags)
    pd.testing.assert_frame_equal(b.examples, a.examples)
    assert b.n_hb_uncorrected == a.n_hb_uncorrected
    pd.testing.assert_frame_equal(b.measures, a.measures, check_exact=False, rtol=1e-12, atol=1e-12)
    pd.testing.assert_frame_equal(b.agreement, a.agreement, check_exact=False, rtol=1e-12, atol=1e-12)
    if name == "check_equation":
        assert len(a.agreement) > 1 and a.measures["sd_recorded_minus_derived"].notna().any()


def test_pooled_mean_and_sd_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, 1000)
    cuts = [0, 1, 2, 300, 301, 1000]  # groups of 1, 1, 298, 1, 699 values
    groups = [x[a:b] for a, b in zip(cuts, cuts[1:])]
    n = np.array([len(g) for g in groups] + [0])
    mean = np.array([g.mean() for g in groups] + [np.nan])
    sd = np.array([g.std(ddof=1) if len(g) > 1 else np.nan for g in groups] + [np.nan])
    total, m, s = pft_store._pooled(n, mean, sd)
    assert total == 1000
    assert m == pytest.approx(x.mean(), rel=1e-13) and s == pytest.approx(x.std(ddof=1), rel=1e-13)
    assert pft_store._pooled(np.array([0]), np.array([np.nan]), np.array([np.nan])) == (0, None, None)
    assert pft_store._pooled(np.array([1]), np.array([2.0]), np.array([np.nan])) == (1, 2.0, None)
