"""Non-linear time (ns, pl), slopes (emtrends), optimizer options and at-risk counts (issues 15, 16).

Agreement with R for whole fits lives in test_lmm_reference.py (fixtures ild110_ns_reml, ild110_ns_knots_reml,
ild110_pl_reml, written by tests/reference/lmm_reference.R); these tests check the pieces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildstudy.errors import ModelError
from ildstudy.lmm import fit_lmm
from ildstudy.lmm.at_risk import months_with_enough, patients_at_risk
from ildstudy.lmm.design import model_rows
from ildstudy.lmm.formula import rewrite_time_calls
from ildstudy.lmm.options import OptimizerOptions
from ildstudy.lmm.splines import ns_basis, ns_knots, pl_basis, r_quantile7

DATA = Path(__file__).parent / "reference" / "lmm" / "data" / "ild110.csv"
LEVELS = {"arm": ["MMF", "AZA"]}


@pytest.fixture(scope="module")
def ild():
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def ns_fit(ild):
    return fit_lmm("fvc ~ ns(months, df = 3) * arm + (1 + months | id)", ild, factor_levels=LEVELS)


def test_quantile7_is_numpy_linear():
    x = np.random.default_rng(3).exponential(size=101)
    probs = [0.0, 1 / 3, 0.5, 2 / 3, 1.0]
    np.testing.assert_allclose(r_quantile7(x, probs), np.quantile(x, probs, method="linear"), rtol=1e-14)


def test_ns_basis_is_natural_and_linear_outside():
    knots, boundary = np.array([5.0, 20.0]), np.array([0.0, 40.0])
    x = np.linspace(-10, 60, 141)
    basis = ns_basis(x, knots, boundary)
    assert basis.shape == (141, 3)
    for mask in (x <= 0, x >= 40):  # straight lines beyond the boundary knots
        second = np.diff(basis[mask], 2, axis=0)
        assert np.max(np.abs(second)) < 1e-12
    assert np.max(np.abs(np.diff(basis[(x > 0) & (x < 5)], 2, axis=0))) > 1e-6  # curved inside


def test_ns_knots_from_quantiles_and_given():
    x = np.arange(10.0)
    knots, boundary = ns_knots(x, df=3, knots=None, boundary_knots=None)
    np.testing.assert_allclose(knots, np.quantile(x, [1 / 3, 2 / 3]))
    assert boundary.tolist() == [0.0, 9.0]
    with pytest.raises(ModelError, match="strictly inside"):
        ns_knots(x, df=None, knots=[12.0], boundary_knots=None)


def test_pl_basis_hinges():
    np.testing.assert_array_equal(pl_basis([0, 6, 9, 15], [6, 12]),
                                  [[0, 0, 0], [6, 0, 0], [9, 3, 0], [15, 9, 3]])


def test_term_names_as_lme4_prints_them(ild):
    fit = fit_lmm("fvc ~ pl(months, knots=c(6,12.0)) * arm + (1 | id)", ild, factor_levels=LEVELS)
    assert list(fit.fixed_effects["term"]) == [
        "(Intercept)", "pl(months, knots = c(6, 12))1", "pl(months, knots = c(6, 12))2",
        "pl(months, knots = c(6, 12))3", "armAZA", "pl(months, knots = c(6, 12))1:armAZA",
        "pl(months, knots = c(6, 12))2:armAZA", "pl(months, knots = c(6, 12))3:armAZA"]
    _, calls = rewrite_time_calls("ns(months, knots = c(6, 18), Boundary.knots = c(0, 60))")
    assert calls[0].label == "ns(months, knots = c(6, 18), Boundary.knots = c(0, 60))"


def test_new_rows_reuse_training_knots(ild, ns_fit):
    """Rows built for two new months equal the training rows at those months (R's makepredictcall)."""
    enc = ns_fit.encoding
    months = ild["months"].to_numpy()
    knots, boundary = ns_knots(months, df=3, knots=None, boundary_knots=None)
    new = pd.DataFrame({"months": [12.0, 70.0], "arm": ["MMF", "MMF"]})
    X = model_rows(enc, new)
    np.testing.assert_allclose(X[:, 1:4], ns_basis([12.0, 70.0], knots, boundary), rtol=1e-13, atol=1e-15)
    # knots computed on the two new months alone would differ:
    own_knots, own_boundary = ns_knots(np.array([12.0, 70.0]), df=3, knots=None, boundary_knots=None)
    assert not np.allclose(ns_basis([12.0, 70.0], own_knots, own_boundary), X[:, 1:4])


@pytest.mark.parametrize(("formula", "message"), [
    ("fvc ~ ns(months, dff = 3) + (1 | id)", "unknown argument 'dff'"),
    ("fvc ~ pl(months) + (1 | id)", "needs knots"),
    ("fvc ~ ns(months, df = 2.5) + (1 | id)", "whole number"),
    ("fvc ~ ns(arm, df = 2) + (1 | id)", "must be numeric"),
    ("fvc ~ ns(months, knots = c(6, x)) + (1 | id)", "must be a number"),
])
def test_bad_time_calls(ild, formula, message):
    with pytest.raises(ModelError, match=message):
        fit_lmm(formula, ild, factor_levels=LEVELS)


def test_linear_slopes_are_the_coefficients(ild):
    fit = fit_lmm("fvc ~ months * arm + age + (1 + months | id)", ild, factor_levels=LEVELS)
    beta = fit.fixed_effects.set_index("term")["estimate"]
    s = fit.slopes("months", "arm", by="months", at={"months": [0, 24]}).table
    np.testing.assert_allclose(s.loc[s.arm == "MMF", "estimate"], beta["months"], rtol=1e-9)
    np.testing.assert_allclose(s.loc[s.arm == "AZA", "estimate"], beta["months"] + beta["months:armAZA"], rtol=1e-9)
    per_year = fit.slopes("months", "arm", per=12).table
    np.testing.assert_allclose(per_year["estimate"].to_numpy(), 12 * s["estimate"].to_numpy()[:2], rtol=1e-9)
    diff = fit.slope_contrast("months", "arm")
    assert diff["contrast"].tolist() == ["AZA - MMF"]
    assert diff["estimate"].iloc[0] == pytest.approx(beta["months:armAZA"], rel=1e-9)
    with pytest.raises(ModelError, match="numeric fixed-effects variable"):
        fit.slopes("arm", "arm")


def test_spline_slope_close_to_analytic_derivative(ns_fit):
    """emtrends' forward difference vs a central difference with a tiny step: O(delta) apart."""
    fd = ns_fit.slopes("months", "arm", by="months", at={"months": [6.0]}).table["estimate"].to_numpy()
    fine = ns_fit.slopes("months", "arm", by="months", at={"months": [6.0 - 5e-5]}, delta=1e-4).table
    assert np.max(np.abs(fd - fine["estimate"].to_numpy())) < 1e-2 * np.max(np.abs(fd)) + 1e-3


def test_optimizer_options_validated_recorded_and_round_trip(ild):
    with pytest.raises(ModelError, match="allowed options: ftol"):
        fit_lmm("fvc ~ months + (1 | id)", ild, optimizer={"tolerance": 1})
    with pytest.raises(ModelError, match="ftol"):
        fit_lmm("fvc ~ months + (1 | id)", ild, optimizer={"ftol": -1})
    options = OptimizerOptions(ftol=1e-12, max_evaluations=400)
    fit = fit_lmm("fvc ~ months + (1 + months | id)", ild, optimizer=options)
    default = fit_lmm("fvc ~ months + (1 + months | id)", ild)
    assert fit.optimizer.options == options and default.optimizer.options == OptimizerOptions()
    assert fit.criterion == pytest.approx(default.criterion, abs=1e-8)
    record = fit.to_dict()["optimizer"]
    assert record["options"]["ftol"] == 1e-12 and record["evaluations"] == fit.optimizer.evaluations
    assert record["final"] == list(fit.theta) and len(record["start"]) == 3
    assert OptimizerOptions.model_validate(json.loads(json.dumps(record["options"]))) == options
    starved = fit_lmm("fvc ~ months + (1 + months | id)", ild, optimizer={"max_evaluations": 1, "newton_steps": 0})
    assert not starved.converged and starved.optimizer.evaluations <= 6


def test_patients_at_risk():
    patient = ["a", "a", "a", "b", "b", "c"]
    arm = ["X", "X", "X", "X", "X", "Y"]
    months = [0, 5, 30, 0, 11.9, 12]
    counts = patients_at_risk(patient, arm, months, at=[0, 12, 24, 36])
    assert counts.to_dict("list") == {"X": [2, 1, 1, 0], "Y": [1, 1, 0, 0]}
    window = patients_at_risk(patient, arm, months, at=[12], window=1)
    assert window.to_dict("list") == {"X": [1], "Y": [1]}
    assert months_with_enough(counts, 1).tolist() == [True, True, False, False]
    with pytest.raises(ModelError):
        patients_at_risk(patient, arm, months, at=[0], window=-1)
