"""The O(n log n) weighted Cox fit (confounding) equals the per-event-time loop it replaced (issue 13 item 3).

The reference below is the former implementation of ``weighted_cox``'s score/information/residuals, verbatim:
a dense (event times x n) risk-set mask, one Python iteration per event time. Data have heavy ties (times on a
coarse grid), censoring at event times, zero and unequal weights, and clusters, so that Efron's tie correction
and the residual bookkeeping at a patient's own event time are exercised.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.confounding.outcomes import weighted_cox


def _reference(time, event, treated, w, cluster, tol=1e-12, max_iter=50):
    keep = w > 0
    t, d, x, w, cl = time[keep], event[keep], treated[keep].astype(float), w[keep], cluster[keep]
    ev_times = np.unique(t[d])
    at_risk = t[None, :] >= ev_times[:, None]
    dies = (t[None, :] == ev_times[:, None]) & d[None, :]

    def pieces(beta):
        r = np.exp(beta * x)
        score, info = 0.0, 0.0
        resid = np.zeros(len(t))
        for j in range(len(ev_times)):
            R, D = at_risk[j], dies[j]
            nd = int(D.sum())
            meanwt = w[D].sum() / nd
            s0, s1 = (w * r)[R].sum(), (w * r * x)[R].sum()
            e0, e1 = (w * r)[D].sum(), (w * r * x)[D].sum()
            f = np.arange(nd) / nd
            d0, d1 = s0 - f * e0, s1 - f * e1
            xb = d1 / d0
            score += float((w * x)[D].sum() - meanwt * xb.sum())
            info += float(meanwt * (xb * (1 - xb)).sum())
            haz = meanwt * (x[:, None] - xb[None, :]) / d0[None, :]
            resid -= np.where(R & ~D, r * haz.sum(axis=1), 0.0)
            resid[D] += x[D] - xb.mean() - r[D] * (haz[D] * (1 - f)[None, :]).sum(axis=1)
        return score, info, resid

    beta = 0.0
    for _ in range(max_iter):
        score, info, _ = pieces(beta)
        step = score / info
        beta += step
        if abs(step) < tol * (1 + abs(beta)):
            break
    _, info, resid = pieces(beta)
    codes, _ = pd.factorize(pd.Series(cl), sort=True)
    u = np.bincount(codes, weights=w * resid)
    return beta, math.sqrt(u @ u) / info


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weighted_cox_matches_the_per_event_time_loop(seed):
    rng = np.random.default_rng(seed)
    n = 400
    treated = rng.random(n) < 0.4
    time = np.round(rng.exponential(np.where(treated, 10, 14)) * 2) / 2   # half-month grid: many ties
    event = rng.random(n) < 0.6
    w = np.where(rng.random(n) < 0.1, 0.0, rng.gamma(2.0, 0.5, n))         # some zero weights
    cluster = rng.integers(0, 150, n)                                       # matched pairs / repeated patients
    fit = weighted_cox(time, event, treated, w, cluster)
    beta, se = _reference(time, event, treated, w, cluster)
    assert fit.coef == pytest.approx(beta, rel=1e-10, abs=1e-12)
    assert fit.robust_se == pytest.approx(se, rel=1e-10)
    assert fit.events == int(event[w > 0].sum())


def _fine_gray_reference(t, c, x, ties, censoring_ties):
    """The former dense Fine–Gray fit (coefficient, robust SE), verbatim apart from the result type."""
    from ildstudy.analysis.competing_risks import _g_before, censoring_survival

    ev = c == 1
    ct, g = censoring_survival(t, c, censoring_ties)
    competing = (c > 0) & ~ev
    g_own = _g_before(ct, g, t)
    event_times = np.unique(t[ev])
    g_evt = _g_before(ct, g, event_times)
    W = (t[None, :] >= event_times[:, None]).astype(float)
    late = competing[None, :] & (t[None, :] < event_times[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        W = np.where(late, g_evt[:, None] / g_own[None, :], W)
    D = (t[None, :] == event_times[:, None]) & ev[None, :]

    def pieces(beta):
        r = np.exp(beta * x)
        ll, score, info = 0.0, 0.0, 0.0
        resid = np.zeros(len(t))
        for j in range(len(event_times)):
            w, dj = W[j], D[j]
            d = float(dj.sum())
            s0, s1 = float(w @ r), float(w @ (r * x))
            e0, e1 = float(r[dj].sum()), float((r * x)[dj].sum())
            m = np.arange(d) / d if ties == "efron" else np.zeros(int(d))
            den0, den1 = s0 - m * e0, s1 - m * e1
            xbar = den1 / den0
            ll += float(beta * x[dj].sum() - np.log(den0).sum())
            score += float(x[dj].sum() - xbar.sum())
            info += float((xbar * (1 - xbar)).sum())
            haz = (x[:, None] - xbar[None, :]) / den0[None, :]
            resid -= w * r * haz.sum(axis=1) * ~dj
            resid[dj] += x[dj] - xbar.mean() - r[dj] * (haz[dj] * (1 - m)[None, :]).sum(axis=1)
        return ll, score, info, resid

    beta = 0.0
    for _ in range(50):
        _, score, info, _ = pieces(beta)
        step = score / info
        beta += step
        if abs(step) < 1e-12 * (1 + abs(beta)):
            break
    ll, score, info, resid = pieces(beta)
    return beta, math.sqrt(float(resid @ resid)) / info, ll


@pytest.mark.parametrize("seed,ties,censoring_ties", [(1, "efron", "finegray"), (2, "breslow", "crr"),
                                                      (3, "efron", "crr")])
def test_fine_gray_matches_the_dense_loop(seed, ties, censoring_ties):
    from ildstudy.analysis.competing_risks import fine_gray

    rng = np.random.default_rng(seed)
    n = 500
    x = (rng.random(n) < 0.45).astype(float)
    t = np.round(rng.exponential(12, n))          # whole months: ties among events, competing events, censoring
    t[t == 0] = 0.5
    c = rng.choice([0, 1, 2], size=n, p=[0.4, 0.35, 0.25])
    fit = fine_gray(t, c, x, 1, ties=ties, censoring_ties=censoring_ties)
    beta, robust_se, ll = _fine_gray_reference(t, c, x, ties, censoring_ties)
    assert fit.coef == pytest.approx(beta, rel=1e-10, abs=1e-12)
    assert fit.robust_se == pytest.approx(robust_se, rel=1e-10)
    assert fit.loglik == pytest.approx(ll, rel=1e-12)
