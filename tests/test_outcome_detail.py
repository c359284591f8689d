"""``fit_outcome(detail="differences")``, the fit a sensitivity analysis is summarised by, gives the same model
and arm differences as the full fit, and leaves the rest empty (issue 13: the variants' models were half of
their time)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.trajectories import fit_outcome, model_frame
from ildstudy.cohort import build_cohort
from ildstudy.data.load import registry_from_frames
from ildstudy.protocol import load_protocol
from ildstudy.synth import generate_registry


@pytest.fixture(scope="module")
def cohort():
    p = load_protocol("huapaya2019")
    frames, _ = generate_registry(400, np.random.default_rng(3), p)
    return build_cohort(registry_from_frames(frames), p)


@pytest.mark.parametrize("time_model", ["linear", "categorical"])
def test_differences_only_equals_the_full_fit(cohort, time_model):
    p = cohort.protocol
    outcome = p.outcomes[0].model_copy(update={"time_model": time_model})
    frame = model_frame(cohort.patients, cohort.outcomes, outcome.name)
    before = frame.copy()
    full = fit_outcome(outcome, frame, p)
    lean = fit_outcome(outcome, frame, p, detail="differences")
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is not modified
    pd.testing.assert_frame_equal(lean.arm_differences, full.arm_differences)
    pd.testing.assert_frame_equal(lean.fixed_effects, full.fixed_effects)
    assert lean.model["reml_criterion"] == full.model["reml_criterion"]
    assert len(full.marginal_means) and lean.marginal_means.empty and lean.observed.empty
    assert lean.slopes is None and lean.contrast_support is None
    with pytest.raises(ValueError, match="detail"):
        fit_outcome(outcome, frame, p, detail="some")
