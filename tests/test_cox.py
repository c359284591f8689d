"""The hand-written Efron Cox fit (analysis/cox.py) against lifelines' CoxPHFitter (oracle) on random data.

R's coxph fixtures (tests/reference/analysis/survival.json, competing_risks.json) are checked through the
discontinuation and competing-risks tests; this file covers many shapes: ties, several covariates, tiny and
large samples, all events tied at one time.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.cox import efron_cox

lifelines = pytest.importorskip("lifelines")

#: lifelines stopped at floating-point noise (its default stops ~1e-6 short of the maximum).
LIFELINES_OPTIONS = {"precision": 1e-20, "r_precision": 0.0, "step_size": 0.95, "max_steps": 500}


def _lifelines(time, event, x):
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])]).assign(t=time, e=event.astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lifelines.CoxPHFitter().fit(df, "t", "e", fit_options=LIFELINES_OPTIONS)
    null = fit.log_likelihood_ - fit.log_likelihood_ratio_test().test_statistic / 2
    return fit.params_.to_numpy(), fit.standard_errors_.to_numpy(), fit.log_likelihood_, null


@pytest.mark.parametrize("seed", range(30))
def test_efron_cox_equals_lifelines(seed):
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(8, 500)), int(rng.integers(1, 4))
    x = (rng.random((n, p)) < 0.4).astype(float)
    if seed % 3 == 0:
        x[:, 0] = rng.normal(size=n)                       # a continuous covariate too
    time = np.round(rng.exponential(12, n) * np.exp(-x @ rng.normal(0, 0.5, p)), seed % 2)  # many ties if 0
    event = rng.random(n) < 0.6
    event[0] = True
    coef, se, loglik, null = _lifelines(time, event, x)
    fit = efron_cox(time, event, x)
    assert fit.converged
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.se, se, rtol=1e-8)
    assert fit.loglik == pytest.approx(loglik, rel=1e-10)
    assert fit.loglik_null == pytest.approx(null, rel=1e-10)


def test_all_events_tied_and_no_events():
    time = np.array([5.0] * 6 + [7.0] * 4)
    event = np.array([1, 1, 1, 0, 1, 1, 0, 1, 0, 1], dtype=bool)
    x = np.array([1, 0, 1, 0, 1, 0, 0, 1, 1, 0], dtype=float)[:, None]
    coef, se, loglik, _ = _lifelines(time, event, x)
    fit = efron_cox(time, event, x)
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-8)
    np.testing.assert_allclose(fit.se, se, rtol=1e-8)
    with pytest.raises(ValueError, match="at least one event"):
        efron_cox(time, np.zeros(10, dtype=bool), x)


def test_monotone_likelihood_is_not_converged():
    # every event in arm 1 before any arm-0 time: beta runs to +infinity (coxph warns), flagged not converged
    time = np.arange(1.0, 11.0)
    x = np.r_[np.ones(5), np.zeros(5)][:, None]
    event = np.r_[np.ones(5), np.zeros(5)].astype(bool)
    assert not efron_cox(time, event, x).converged
