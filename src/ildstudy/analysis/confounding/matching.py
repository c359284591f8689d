"""Nearest-neighbour matching on the propensity score, exactly as ``MatchIt::matchit(method = "nearest")``.

The algorithm is MatchIt 4.5's ``nn_matchC_vec`` (src/nn_matchC_vec.cpp), step by step:

* all patients are sorted by the distance (ascending, stable: ties keep data order);
* ``m.order``: the treated (first-arm) patients are matched in order of decreasing distance (``"largest"``, the
  default for a propensity score), increasing (``"smallest"``) or data order (``"data"``; forced when matching
  with replacement);
* with ``ratio = k``, matching runs in k rounds: every treated patient gets its first match in round 1, its
  second in round 2, and so on;
* a treated patient's match is the nearest available control to its left or right in the sorted order; on a tie
  the left one (smaller distance) wins; a control already matched to this patient is skipped, and without
  replacement a matched control is no longer available;
* caliper: the search on a side stops at the first available control farther than ``caliper`` (MatchIt's
  ``std.caliper = TRUE``: ``caliper x sd(distance)``, the SD over all patients, n - 1 denominator), so a treated
  patient with none within it stays unmatched;
* weights (``weights_matrixC``): a matched treated patient 1; each control the sum over its treated patients of
  ``1 / (their number of matches)``, then all control weights scaled to sum to the number of matched controls;
* subclasses (without replacement only, ``mm2subclass``): a treated patient with a match and its controls.

>>> import numpy as np
>>> d, t = np.array([0.1, 0.4, 0.35, 0.9, 0.2]), np.array([True, True, False, False, False])
>>> nearest_match(d, t, caliper_sd=None).matches.tolist()       # largest first: 0.4 takes 0.35
[[4], [2]]
>>> nearest_match(d, t, caliper_sd=0.2).matches.tolist()        # caliper 0.2 x 0.309: 0.1 has none
[[-1], [2]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

MatchOrder = Literal["largest", "smallest", "data"]


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The matched set.

    Attributes
    ----------
    matches : ndarray of int, shape (n_treated, ratio)
        Per treated patient (in data order), the data positions of its controls (-1: none), MatchIt's
        ``match.matrix``.
    weights : ndarray, shape (n,)
        MatchIt's matching weights (0 for unmatched patients).
    subclass : ndarray of int, shape (n,)
        The pair / set of each matched patient (the data position of its treated patient; -1 unmatched or with
        replacement, where MatchIt has no subclasses).
    caliper : float or None
        The caliper on the distance scale (``caliper_sd x sd(distance)``).
    ratio, replace, order : the settings.
    """

    matches: np.ndarray
    weights: np.ndarray
    subclass: np.ndarray
    caliper: float | None
    ratio: int
    replace: bool
    order: str

    @property
    def matched(self) -> np.ndarray:
        """Patients in the matched set (weight > 0)."""
        return self.weights > 0


def nearest_match(distance: np.ndarray, treated: np.ndarray, *, ratio: int = 1, replace: bool = False,
                  caliper_sd: float | None = 0.2, order: MatchOrder = "largest") -> MatchResult:
    """Match each treated patient to ``ratio`` controls on ``distance`` (the logit of the propensity score).

    Parameters
    ----------
    distance : ndarray, shape (n,)
    treated : ndarray of bool, shape (n,)
    ratio : int >= 1
    replace : bool
        Controls may be reused (then ``order`` is ``"data"``, as MatchIt forces).
    caliper_sd : float, optional
        Caliper in SDs of ``distance`` (None: no caliper).
    order : {"largest", "smallest", "data"}
    """
    d = np.asarray(distance, dtype=float)
    t = np.asarray(treated, dtype=bool)
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    n = len(d)
    treated_pos = np.flatnonzero(t)
    n1 = len(treated_pos)
    reuse_max = np.iinfo(np.int32).max if replace else 1
    if reuse_max >= n1:
        order = "data"
    caliper = None if caliper_sd is None else float(caliper_sd) * float(np.std(d, ddof=1))
    d_ord = np.argsort(d, kind="stable")
    ts, ds = t[d_ord], d[d_ord]
    sorted_pos = np.empty(n, dtype=np.int64)
    sorted_pos[d_ord] = np.arange(n)
    dt = d[treated_pos]
    if order == "largest":
        ord_ = np.argsort(-dt, kind="stable")
    elif order == "smallest":
        ord_ = np.argsort(dt, kind="stable")
    elif order == "data":
        ord_ = np.arange(n1)
    else:
        raise ValueError(f"order must be largest, smallest or data, got {order!r}")
    mm = np.full((n1, ratio), -1, dtype=np.int64)
    times = np.zeros(n, dtype=np.int64)
    available = ~ts.copy()
    if n1 and available.any():
        _rounds(ds, ts, d_ord, sorted_pos[treated_pos], ord_, available, times, mm, ratio, reuse_max, caliper)
    weights = _weights(mm, treated_pos, n)
    subclass = np.full(n, -1, dtype=np.int64)
    if not replace:
        for row, tp in enumerate(treated_pos):
            if mm[row, 0] >= 0:
                subclass[tp] = tp
                subclass[mm[row][mm[row] >= 0]] = tp
    return MatchResult(matches=mm, weights=weights, subclass=subclass, caliper=caliper, ratio=ratio,
                       replace=replace, order=order)


def _rounds(ds, ts, d_ord, treated_sorted, ord_, available, times, mm, ratio, reuse_max, caliper) -> None:
    """MatchIt's rounds; the nearest available control on each side comes from :class:`_Available`."""
    free = _Available(available)
    for r in range(ratio):
        for row in ord_:
            ii = int(treated_sorted[row])
            taken = set(mm[row][mm[row] >= 0].tolist()) if r > 0 else set()
            left = _nearest(free, ii, -1, ds, d_ord, taken, caliper)
            right = _nearest(free, ii, +1, ds, d_ord, taken, caliper)
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
                free.remove(k)
            if free.count == 0:
                return


def _nearest(free, ii, step, ds, d_ord, taken, caliper) -> int:
    """``find_left`` / ``find_right``: the nearest available control on one side not already matched to this
    treated patient, or -1; -1 too when it is farther than the caliper (the search stops there)."""
    k = free.left(ii - 1) if step < 0 else free.right(ii + 1)
    while k >= 0 and taken and int(d_ord[k]) in taken:
        k = free.left(k - 1) if step < 0 else free.right(k + 1)
    if k < 0 or (caliper is not None and abs(ds[ii] - ds[k]) > caliper):
        return -1
    return k


class _Available:
    """The available controls in sorted order, with the nearest one at or left / right of a position.

    Two union-find forests with path halving (each removed position points to its neighbour on that side), so a
    whole matching is O(n alpha(n)) where MatchIt's linear scan over matched controls is O(n^2) at worst (46 s
    for 48,000 treated patients at 100,000 patients). Positions are stored shifted by one, with sentinels
    0 (nothing to the left) and n + 1 (nothing to the right) that are their own roots.
    """

    def __init__(self, available: np.ndarray) -> None:
        n = len(available)
        pos = np.arange(1, n + 1)
        self._l = [0, *np.where(available, pos, pos - 1).tolist(), n + 1]
        self._r = [0, *np.where(available, pos, pos + 1).tolist(), n + 1]
        self._n = n
        self.count = int(np.count_nonzero(available))

    @staticmethod
    def _find(parent: list, x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def left(self, k: int) -> int:
        """The nearest available position <= k, or -1."""
        return self._find(self._l, k + 1) - 1 if k >= 0 else -1

    def right(self, k: int) -> int:
        """The nearest available position >= k, or -1."""
        if k >= self._n:
            return -1
        x = self._find(self._r, k + 1)
        return -1 if x == self._n + 1 else x - 1

    def remove(self, k: int) -> None:
        self._l[k + 1], self._r[k + 1] = k, k + 2
        self.count -= 1


def _weights(mm: np.ndarray, treated_pos: np.ndarray, n: int) -> np.ndarray:
    """MatchIt's ``weights_matrixC``."""
    w = np.zeros(n)
    for row, tp in enumerate(treated_pos):
        got = mm[row][mm[row] >= 0]
        if len(got) == 0:
            continue
        np.add.at(w, got, 1.0 / len(got))
        w[tp] = 1.0
    control = np.ones(n, dtype=bool)
    control[treated_pos] = False
    total = w[control].sum()
    if total > 0:
        w[control] = w[control] * (w[control] > 0).sum() / total
    return w
