"""The union-find nearest-neighbour matching equals MatchIt's linear scan (the previous implementation).

The oracle below is ildstudy's matching as it was until 2026-12-03 (a transcription of MatchIt 4.5's
``nn_matchC_vec`` find_left / find_right, verified against MatchIt in tests/test_confounding.py); it is kept
verbatim here so the new search is checked against code that does not call it.
"""

from __future__ import annotations

import numpy as np
import pytest

from ildstudy.analysis.confounding import matching
from ildstudy.analysis.confounding.matching import nearest_match


def _old_rounds(ds, ts, d_ord, treated_sorted, ord_, available, times, mm, ratio, reuse_max, caliper) -> None:
    first, last = _old_ends(available)
    for r in range(ratio):
        for row in ord_:
            ii = treated_sorted[row]
            taken = set(mm[row][mm[row] >= 0].tolist()) if r > 0 else set()
            left = _old_search(ii, -1, first, ds, ts, d_ord, available, taken, caliper)
            right = _old_search(ii, +1, last, ds, ts, d_ord, available, taken, caliper)
            if left >= 0 and right >= 0:
                k = left if abs(ds[left] - ds[ii]) <= abs(ds[right] - ds[ii]) else right
            elif left >= 0 or right >= 0:
                k = max(left, right)
            else:
                continue
            mm[row, r] = d_ord[k]
            times[k] += 1
            if times[k] >= reuse_max:
                available[k] = False
            if not available.any():
                return
            first, last = _old_ends(available)


def _old_search(ii, step, bound, ds, ts, d_ord, available, taken, caliper) -> int:
    k = ii + step
    while (k >= bound) if step < 0 else (k <= bound):
        if ts[k] or (taken and int(d_ord[k]) in taken) or not available[k]:
            k += step
            continue
        if caliper is not None and abs(ds[ii] - ds[k]) > caliper:
            return -1
        return k
    return -1


def _old_ends(available):
    idx = np.flatnonzero(available)
    return int(idx[0]), int(idx[-1])


CASES = [(n, p, ratio, replace, caliper, order, ties)
         for n, p in ((40, 0.3), (300, 0.6), (1500, 0.4), (800, 0.8))
         for ratio in (1, 2, 3) for replace in (False, True) for caliper in (None, 0.2, 0.02)
         for order in ("largest", "smallest", "data") for ties in (False, True)]


@pytest.mark.parametrize("n,p,ratio,replace,caliper,order,ties", CASES[::3] + CASES[1::7])
def test_union_find_search_equals_linear_scan(monkeypatch, n, p, ratio, replace, caliper, order, ties):
    rng = np.random.default_rng(n * 7 + ratio * 3 + int(replace) + (0 if caliper is None else int(caliper * 100)))
    d = rng.normal(size=n) + (rng.random(n) < p) * 0.8
    if ties:
        d = np.round(d, 1)  # many equal distances: ties are broken by data order in both
    treated = rng.random(n) < p
    new = nearest_match(d, treated, ratio=ratio, replace=replace, caliper_sd=caliper, order=order)
    monkeypatch.setattr(matching, "_rounds", _old_rounds)
    old = nearest_match(d, treated, ratio=ratio, replace=replace, caliper_sd=caliper, order=order)
    if caliper is None:  # not a vacuous comparison: without a caliper every case matches someone
        assert (new.matches >= 0).any()
    np.testing.assert_array_equal(new.matches, old.matches)
    np.testing.assert_array_equal(new.weights, old.weights)
    np.testing.assert_array_equal(new.subclass, old.subclass)


def test_controls_run_out():
    """More treated than controls without replacement: the last treated patients stay unmatched, as before."""
    d = np.linspace(0, 1, 30)
    treated = np.arange(30) % 3 != 0
    m = nearest_match(d, treated, caliper_sd=None)
    assert (m.matches[:, 0] >= 0).sum() == 10 and len(set(m.matches[m.matches >= 0].tolist())) == 10
