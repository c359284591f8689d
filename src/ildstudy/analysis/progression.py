"""Progression endpoints: time to the first decline of lung function from baseline, by arm.

A patient's **decline** at a follow-up test is measured against the baseline value (the baseline PFT of the
cohort, month 0) of the same measure (FVC or DLCO % predicted, as recorded): ``relative`` =
``100 · (baseline − value) / baseline`` (% of baseline), ``absolute`` = ``baseline − value`` (points of %
predicted). A test **qualifies** when the decline is ≥ the threshold (to 1e-9) and the test is within
``window_months`` of index (unset: the whole follow-up). With ``confirmed`` the next test of the measure (at any
time) must show a decline ≥ the threshold too; a qualifying last test cannot be confirmed.

* **Event time** = months of the first qualifying (and, if asked, confirmed) test — not of the confirming test
  (the INBUILD / OSMIC convention).
* **Censoring**: without an event, at the last test of the measure inside the window (a decline can only be seen
  at a test); patients with no follow-up test are censored at month 0 (counted, no time at risk). Patients without
  a baseline value of the measure are not analysed (counted per arm, ``no_baseline``).
* The **PPF physiological criterion** (Raghu et al., AJRCCM 2022;205:e18–e47): an absolute FVC decline ≥ 5 or DLCO
  decline ≥ 10 points of % predicted within 12 months; its time is the earlier of the two measures' event times,
  else it is censored at the later of their censoring times.

Kaplan–Meier, log-rank and Cox per arm are those of discontinuation
(:func:`ildstudy.analysis.discontinuation.event_endpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ildstudy._json import finite_or_none, frame_records
from ildstudy.analysis.discontinuation import EndpointResult, event_endpoint
from ildstudy.analysis.progression_slope import FvcSlopeResult

#: Tolerance of the threshold comparison (a decline of exactly the threshold qualifies).
THRESHOLD_TOLERANCE = 1e-9
COUNT_COLUMNS = ["arm", "n", "no_baseline", "no_follow_up_test", "analysed", "events"]


@dataclass(frozen=True, slots=True)
class Criterion:
    """One decline rule: ``measure`` (fvc|dlco), ``kind`` (relative|absolute), ``threshold``."""

    measure: str
    kind: str
    threshold: float

    def to_dict(self) -> dict:
        return {"measure": self.measure, "kind": self.kind, "threshold": float(self.threshold)}


@dataclass(frozen=True, slots=True)
class DeclineTimes:
    """Per patient: ``months`` (event or censoring time), ``event`` (bool), ``has_baseline``, ``n_tests`` (follow-up
    tests of the measure); arrays of shape (n_patients,)."""

    months: np.ndarray
    event: np.ndarray
    has_baseline: np.ndarray
    n_tests: np.ndarray


def first_decline(baseline, patient, months, value, *, kind: str, threshold: float, confirmed: bool = False,
                  window: float | None = None) -> DeclineTimes:
    """Time to the first qualifying decline from baseline for each patient.

    Parameters
    ----------
    baseline : array, shape (n_patients,)
        Baseline value per patient (NaN: none).
    patient, months, value : arrays, shape (n_tests,)
        Follow-up tests: patient index (0 … n_patients − 1), months since index (> 0), value (NaN rows ignored).
    kind : {"relative", "absolute"}
    threshold : float
        Decline that qualifies (% of baseline, or points).
    confirmed : bool
        The next test must show the decline too.
    window : float, optional
        Only tests at or before this month qualify (and censor).

    Examples
    --------
    >>> r = first_decline([80.0, 70.0], [0, 0, 1], [6.0, 12.0, 6.0], [71.0, 75.0, 69.0], kind="relative",
    ...                   threshold=10)
    >>> r.months.tolist(), r.event.tolist()
    ([6.0, 6.0], [True, False])
    """
    if kind not in ("relative", "absolute"):
        raise ValueError(f"kind must be 'relative' or 'absolute', got {kind!r}")
    base = np.asarray(baseline, dtype=float)
    pat, t, v = (np.asarray(a) for a in (patient, months, value))
    t, v = t.astype(float), v.astype(float)
    keep = ~np.isnan(v)
    pat, t, v = pat[keep].astype(np.int64), t[keep], v[keep]
    if len(pat) and (pat.min() < 0 or pat.max() >= len(base)):
        raise ValueError(f"patient indices must be in 0 .. {len(base) - 1} (one baseline per patient)")
    order = np.lexsort((t, pat))
    pat, t, v = pat[order], t[order], v[order]
    n = len(base)
    out_t, out_e = np.zeros(n), np.zeros(n, dtype=bool)
    n_tests = np.bincount(pat, minlength=n)
    b = base[pat]
    drop = 100 * (b - v) / b if kind == "relative" else b - v
    hit = drop >= threshold - THRESHOLD_TOLERANCE
    inside = np.ones_like(t, dtype=bool) if window is None else t <= window + THRESHOLD_TOLERANCE
    q = hit & inside
    if confirmed:  # the patient's next test (sorted by time) declines too; a patient's last test has none
        q &= np.r_[hit[1:] & (pat[1:] == pat[:-1]), False]
    # tests are sorted by patient then time: a patient's first qualifying test is its event; without one, its
    # last test inside the window censors it
    first = np.flatnonzero(q)
    if len(first):
        first = first[np.r_[True, pat[first][1:] != pat[first][:-1]]]
        out_t[pat[first]], out_e[pat[first]] = t[first], True
    last = np.flatnonzero(inside)
    if len(last):
        last = last[np.r_[pat[last][1:] != pat[last][:-1], True]]
        last = last[~out_e[pat[last]]]
        out_t[pat[last]] = t[last]
    has = ~np.isnan(base)
    return DeclineTimes(np.where(has, out_t, np.nan), out_e & has, has, n_tests)


def combine_any(parts: list[DeclineTimes]) -> DeclineTimes:
    """The union endpoint: the earliest event of any part, else censored at the latest censoring time (patients
    with a baseline of at least one part)."""
    has = np.logical_or.reduce([p.has_baseline for p in parts])
    ev = np.logical_or.reduce([p.event for p in parts])
    ev_t = np.min([np.where(p.event, p.months, np.inf) for p in parts], axis=0)
    cens = np.max([np.where(p.has_baseline, p.months, -np.inf) for p in parts], axis=0)
    months = np.where(ev, ev_t, np.where(has, cens, np.nan))
    return DeclineTimes(months, ev, has, np.sum([p.n_tests for p in parts], axis=0))


@dataclass(frozen=True)
class ProgressionEndpointResult:
    """One progression endpoint: its definition, the patients analysed per arm, and the Kaplan–Meier / log-rank /
    Cox result (:class:`~ildstudy.analysis.discontinuation.EndpointResult`, "survival" = progression-free)."""

    name: str
    label: str
    criteria: tuple[Criterion, ...]
    confirmed: bool
    window_months: float | None
    counts: pd.DataFrame = field(repr=False)
    km: EndpointResult = field(repr=False)

    def to_dict(self) -> dict:
        """``{name, label, criteria, confirmed, window_months, counts, km, at_times, medians, logrank_p, logrank,
        cox_hr, ...}`` (the Kaplan–Meier keys as discontinuation's)."""
        out = {"name": self.name, "label": self.label, "criteria": [c.to_dict() for c in self.criteria],
               "confirmed": self.confirmed, "window_months": finite_or_none(self.window_months),
               "counts": frame_records(self.counts)}
        km = self.km.to_dict()
        km.pop("endpoint")
        return {**out, **km}


@dataclass(frozen=True)
class ProgressionResult:
    """Every progression endpoint and the annualised FVC slope."""

    endpoints: tuple[ProgressionEndpointResult, ...]
    fvc_slope: FvcSlopeResult | None

    def to_dict(self) -> dict:
        """results.json's ``progression``: ``{endpoints: [...], fvc_slope: {...} or null}``."""
        return {"endpoints": [e.to_dict() for e in self.endpoints],
                "fvc_slope": None if self.fvc_slope is None else self.fvc_slope.to_dict()}

    def tables(self) -> dict[str, pd.DataFrame]:
        """``progression_at_months`` (Kaplan–Meier at the contrast months, every endpoint), ``progression_counts``
        and, when fitted, ``progression_fvc_slope``."""
        if not self.endpoints:
            out = {}
        else:
            at = pd.concat([e.km.at_times.assign(endpoint=e.name) for e in self.endpoints], ignore_index=True)
            counts = pd.concat([e.counts.assign(endpoint=e.name) for e in self.endpoints], ignore_index=True)
            out = {"progression_at_months": at[["endpoint", *self.endpoints[0].km.at_times.columns]],
                   "progression_counts": counts[["endpoint", *COUNT_COLUMNS]]}
        if self.fvc_slope is not None and self.fvc_slope.slopes is not None:
            out["progression_fvc_slope"] = self.fvc_slope.slopes
        return out


def progression_endpoint(name: str, label: str, criteria, times: DeclineTimes, arm, arms: list[str],
                         reference_arm: str, *, confirmed: bool, window: float | None,
                         report_months) -> ProgressionEndpointResult:
    """Kaplan–Meier, log-rank and Cox by arm of one endpoint's :class:`DeclineTimes` (``arm``: shape (n,))."""
    arm = np.asarray(arm).astype(str)
    rows = []
    for a in arms:
        sel = arm == a
        rows.append({"arm": a, "n": int(sel.sum()), "no_baseline": int((sel & ~times.has_baseline).sum()),
                     "no_follow_up_test": int((sel & times.has_baseline & (times.n_tests == 0)).sum()),
                     "analysed": int((sel & times.has_baseline).sum()), "events": int((sel & times.event).sum())})
    counts = pd.DataFrame(rows, columns=COUNT_COLUMNS)
    ok = times.has_baseline
    order = [a for a in arms if a != reference_arm] + [reference_arm]
    data = pd.DataFrame({"arm": arm[ok], "months": times.months[ok]})
    km = event_endpoint(name, data, times.event[ok], order, reference_arm, tuple(report_months))
    return ProgressionEndpointResult(name, label, tuple(criteria), confirmed, window, counts, km)
