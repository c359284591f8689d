"""The per-patient plan: who each patient is and when things happen to them, decided for everyone at once.

Every decision that a cohort rule or a planted count depends on is taken here, vectorised over all
patients: the group (eligible in an arm, or planted to fail one attrition step), demographics, the
index date, when the arm drug stops and why, switches, the end of follow-up, who has an adverse event
in the follow-up window, the baseline and first follow-up PFT days and the random effects. The row
builders (:mod:`~ildstudy.synth.medications`, :mod:`~ildstudy.synth.measurements`,
:mod:`~ildstudy.synth.people`) only turn a plan into rows and add mess that no rule depends on.

All day values are offsets from the patient's index date; ``NONE`` means "no such date".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ildstudy.data.schema import DIAGNOSES, STOP_REASONS
from ildstudy.synth.balance import random_effects
from ildstudy.synth.calibration import STEPS, Calibration
from ildstudy.synth.windows import NONE, Windows, choose, exact_shares, exact_split, uniform_int

#: group codes: 0 and 1 eligible in arm 0 / arm 1, then 2 + i for STEPS[i]
GROUPS: tuple[str, ...] = ("eligible_0", "eligible_1") + STEPS
G = {name: i for i, name in enumerate(GROUPS)}
REASON = {r: i for i, r in enumerate(STOP_REASONS)}
DIAG = {d: i for i, d in enumerate(DIAGNOSES)}
RACES = ("White", "Black or African American", "Hispanic or Latino", "Asian", "Other")


@dataclass(frozen=True)
class Plan:
    """Per-patient decisions; every array field has one entry per patient (ID order).

    ``group`` indexes :data:`GROUPS` (0/1: eligible in arm 0/1, else the step the patient fails);
    ``variant`` (0/1) tells the two ways a planted group fails its step. ``index``, ``birth`` are days
    since 1970-01-01; ``age`` is years at index. The day fields are offsets from ``index`` (``NONE``: no
    such date): ``stop`` (end of the arm-drug course; ``stop_reason`` codes into ``STOP_REASONS``),
    ``switch`` (start of the other arm's drug), ``restart``/``restart_stop`` (a later, unchained course),
    ``both_start`` (planted both-arm exposure), ``agent_start``/``agent_stop`` (other steroid-sparing agent
    ``agent``, an index into the protocol's list), ``eof`` (end of follow-up by the protocol's rules),
    ``obs_end`` (last day records may have), ``ae_day`` (first in-window adverse event of ``ae``
    patients), ``base_visit``, ``extra_visit``, ``first_visit``, ``visit_end`` (PFT schedule).
    ``no_dlco`` patients never have a DLCO. ``re`` holds the random effects, shape (n, 3, 2): outcome
    (FVC, DLCO, prednisone) x (intercept, slope per month). ``balanced`` (one value for all) asks the row
    builders to adjust the random effects to the observations the study's model will use (see
    :mod:`ildstudy.synth.balance`); ``first_id`` is the number of patients before this block.
    """

    group: np.ndarray
    arm: np.ndarray
    variant: np.ndarray
    female: np.ndarray
    antisynthetase: np.ndarray
    smoking: np.ndarray
    birth: np.ndarray
    index: np.ndarray
    age: np.ndarray
    diagnosis: np.ndarray
    ild: np.ndarray
    race: np.ndarray
    height: np.ndarray
    has_arm: np.ndarray
    stop: np.ndarray
    stop_reason: np.ndarray
    switch: np.ndarray
    restart: np.ndarray
    restart_stop: np.ndarray
    both_start: np.ndarray
    agent: np.ndarray
    agent_start: np.ndarray
    agent_stop: np.ndarray
    eof: np.ndarray
    obs_end: np.ndarray
    ae: np.ndarray
    ae_day: np.ndarray
    ae_discontinued: np.ndarray
    base_visit: np.ndarray
    base_fvc_missing: np.ndarray
    extra_visit: np.ndarray
    first_visit: np.ndarray
    visit_end: np.ndarray
    no_dlco: np.ndarray
    re: np.ndarray
    first_id: int = 0
    balanced: bool = False
    #: Baseline-visit residuals of FVC and DLCO, shape (n, 2), when planted confounding chose the arm on the
    #: baseline PFT (:mod:`ildstudy.synth.confounding`); ``None``: the baseline visit draws its residual as any.
    base_resid: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.group)

    @property
    def eligible(self) -> np.ndarray:
        return self.group < 2

    def chunk(self, lo: int, hi: int) -> "Plan":
        """The plan of patients ``lo:hi`` (their IDs keep counting from ``lo``)."""
        values = {f.name: getattr(self, f.name)[lo:hi] for f in dataclasses.fields(self)
                  if f.name not in ("first_id", "balanced") and getattr(self, f.name) is not None}
        return Plan(**values, first_id=self.first_id + lo, balanced=self.balanced)


def draw_plan(n_patients: int | None, rng: np.random.Generator, win: Windows, cal: Calibration,
              agents: tuple[str, ...], balanced: bool) -> Plan:
    """Decide everything a cohort rule depends on, for ``n_patients`` (``None``: the default registry).

    ``agents`` are the protocol's other steroid-sparing agents; ``balanced`` builds the outcome data
    so that the realised arm trajectories equal the model's (see :mod:`ildstudy.synth.balance`).
    """
    counts = cal.group_counts(n_patients)
    sizes = np.array([counts[g] for g in GROUPS], dtype=np.int64)
    n = int(sizes.sum())
    group = rng.permutation(np.repeat(np.arange(len(GROUPS), dtype=np.int8), sizes))
    eligible = group < 2
    stratum = np.where(eligible, group, 2).astype(np.int64)     # covariates are exact per eligible arm

    share = cal.treatment_share_planted
    arm = np.where(eligible, group, exact_shares(group, [share, 1 - share], rng)).astype(np.int8)
    variant = exact_shares(group, [0.5, 0.5], rng)

    female = exact_shares(stratum, [1 - cal.female, cal.female], rng).astype(bool)
    antisynthetase = exact_shares(stratum, [1 - cal.antisynthetase, cal.antisynthetase], rng).astype(bool)
    smoking = exact_shares(stratum, cal.smoking, rng)

    index = _index_dates(n, group, variant, rng, win, cal.index_years)
    age_years = _standardised(rng.standard_normal(n), stratum) * cal.age_sd + cal.age_mean
    age_years = np.clip(age_years, 21.0, 79.0)
    birth = index - np.floor(age_years * 365.25 + 0.5).astype(np.int64)
    age = (index - birth) / 365.25

    diagnosis, ild = _diagnosis(n, group, variant, antisynthetase, rng)
    race = np.where(rng.random(n) < 0.06, -1, choose(rng, (0.62, 0.16, 0.12, 0.06, 0.04), n)).astype(np.int8)
    height = np.where(female, rng.normal(162.0, 6.5, n), rng.normal(176.0, 7.0, n))
    height = np.round(np.clip(height, 140.0, 205.0), 1)
    height[rng.random(n) < 0.05] = np.nan

    t = _timeline(n, group, variant, stratum, arm, index, rng, win, cal, agents)
    pft = _pft_days(n, group, variant, t["eof"], t["cut_rel"], t["obs_end"], rng, win)
    no_dlco = exact_shares(stratum, [1 - cal.dlco_never, cal.dlco_never], rng).astype(bool)
    re = random_effects(n, rng, group, balanced, {"dlco_pct_pred": ~no_dlco})
    return Plan(group=group, arm=arm, variant=variant, female=female, antisynthetase=antisynthetase,
                smoking=smoking, birth=birth, index=index, age=age, diagnosis=diagnosis, ild=ild, race=race,
                height=height, no_dlco=no_dlco, re=re, balanced=balanced,
                **{k: v for k, v in t.items() if k != "cut_rel"}, **pft)


def _standardised(z: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """z-scores centred and scaled to unit SD within each stratum (strata of one stay as drawn)."""
    sizes = np.bincount(strata)
    mean = np.bincount(strata, weights=z) / np.maximum(sizes, 1)
    var = np.bincount(strata, weights=(z - mean[strata]) ** 2) / np.maximum(sizes - 1, 1)
    sd = np.where(sizes > 1, np.sqrt(var), 1.0)
    return np.where(sizes[strata] > 1, (z - mean[strata]) / np.where(sd > 0, sd, 1.0)[strata], z)


def _index_dates(n, group, variant, rng, win: Windows, years: float) -> np.ndarray:
    """Index dates over ``years`` years before (cut - 2 years), denser in recent years; planted late ones."""
    span = int(years * 365)
    last = win.cut - 2 * 365
    index = last - span + np.floor(np.sqrt(rng.random(n)) * span).astype(np.int64)
    # keep every dose-evaluation day clear of the data cut (ambiguity of "up to the cut")
    index = np.where(win.near_dose_day(win.cut - index), index - 7, index)
    late = group == G["index_before_cut"]
    index = np.where(late, win.cut + uniform_int(rng, 1, 300, n), index)
    near_cut = (group == G["follow_up"]) & ((variant == 1) | (not win.as_treated))
    return np.where(near_cut, win.cut - uniform_int(rng, 31, 60, n), index)


def _diagnosis(n, group, variant, antisynthetase, rng) -> tuple[np.ndarray, np.ndarray]:
    d = DIAG
    pos = np.zeros(len(DIAGNOSES)); neg = np.zeros(len(DIAGNOSES))
    pos[[d["DM"], d["PM"], d["ASyS"], d["overlap"]]] = (0.20, 0.12, 0.55, 0.13)
    neg[[d["DM"], d["PM"], d["IMNM"], d["CADM"], d["overlap"]]] = (0.38, 0.15, 0.10, 0.20, 0.17)
    diagnosis = np.where(antisynthetase, choose(rng, pos, n), choose(rng, neg, n)).astype(np.int8)
    population = group == G["population"]
    diagnosis = np.where(population & (variant == 0), d["other"], diagnosis).astype(np.int8)
    ild = ~(population & (variant == 1))
    return diagnosis, ild


def _timeline(n, group, variant, stratum, arm, index, rng, win: Windows, cal: Calibration,
              agents: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arm-drug course, stops, switches, restarts, other agents, end of follow-up, adverse events."""
    eligible = group < 2
    cut_rel = (win.cut - index).astype(np.int64)
    has_arm = group != G["arm_drug"]
    ordinary = has_arm & ~np.isin(group, [G["index_before_cut"], G["follow_up"]])

    # who has an in-window adverse event: exactly the default rate per eligible arm, 25% of planted patients
    counts = []
    for a in (0, 1):                                    # the two arms, not patients
        size = int((group == a).sum())
        k = cal.ae_count(a, size, cal.eligible[a]) if cal.eligible[a] else 0
        counts.append([size - k, k])
    n_planted = int((~eligible).sum())
    k_planted = int(np.floor(0.25 * n_planted + 0.5))
    counts.append([n_planted - k_planted, k_planted])
    ae = exact_split(stratum, np.array(counts), rng).astype(bool) & ordinary
    ae_discontinued = (exact_shares(stratum * 2 + ae, [1 - cal.ae_discontinued, cal.ae_discontinued], rng)
                       .astype(bool) & ae)
    other_stop = exact_shares(stratum * 2 + ae_discontinued, [1 - cal.other_stop, cal.other_stop], rng)
    other_stop = other_stop.astype(bool) & ~ae_discontinued & ordinary

    stop = np.full(n, NONE)
    reason = np.full(n, -1, dtype=np.int8)
    hi = np.minimum(1500, cut_rel - 40)
    stop = np.where(ae_discontinued, uniform_int(rng, 180, hi, n), stop)
    reason = np.where(ae_discontinued, REASON["adverse_event"], reason)
    hi = np.minimum(1750, cut_rel - 40)
    stop = np.where(other_stop, uniform_int(rng, 180, hi, n), stop)
    why = np.array([REASON[r] for r in ("inefficacy", "remission", "other", "unknown")])
    reason = np.where(other_stop, why[choose(rng, (0.40, 0.20, 0.25, 0.15), n)], reason)
    late = ordinary & ~ae_discontinued & ~other_stop & (cut_rel > win.max_days + 200) & (rng.random(n) < 0.4)
    stop = np.where(late, uniform_int(rng, win.max_days + 60, cut_rel - 10, n), stop)
    reason = np.where(late, np.where(rng.random(n) < 0.6, REASON["remission"], REASON["other"]), reason)

    # planted "no follow-up measurement": the arm drug stops within weeks (as-treated only)
    early = (group == G["follow_up"]) & (variant == 0) & win.as_treated
    stop = np.where(early, uniform_int(rng, 20, 45, n), stop)
    reason = np.where(early, np.where(rng.random(n) < 0.5, REASON["adverse_event"], REASON["other"]), reason)

    switchable = (ae_discontinued | (other_stop & (reason == REASON["inefficacy"])))
    switch = np.where(switchable & (rng.random(n) < cal.switch_share), stop + uniform_int(rng, -14, 21, n), NONE)

    eot = np.minimum(stop, switch)
    horizon = np.minimum(win.max_days, cut_rel)
    end = eot + win.grace
    # keep an as-treated end of follow-up clear of the dose-evaluation days
    shift = win.as_treated & (end < horizon) & win.near_dose_day(end) & ordinary
    stop = np.where(shift & (stop < NONE), stop + 7, stop)
    switch = np.where(shift & (switch < NONE), switch + 7, switch)
    eot = np.minimum(stop, switch)
    eof = np.minimum(horizon, eot + win.grace) if win.as_treated else horizon
    eof = np.where(group == G["index_before_cut"], horizon, eof)

    # records after the cut exist only for planted patients whose index is after the cut
    obs_end = np.where(group == G["index_before_cut"], uniform_int(rng, 200, 500, n), cut_rel)

    # a stopped course restarted months later (not chained: gap >> grace days)
    restartable = (stop < NONE) & (switch == NONE) & (reason != REASON["inefficacy"]) & ordinary
    restart = np.where(restartable & (rng.random(n) < 0.3), stop + uniform_int(rng, 120, 400, n), NONE)
    restart = np.where(restart <= cut_rel - 10, restart, NONE)
    restart_stop = np.where((restart < NONE) & (rng.random(n) < 0.5), restart + uniform_int(rng, 90, 500, n), NONE)
    restart_stop = np.where(restart_stop <= cut_rel, restart_stop, NONE)

    # planted "exposed to both arms": the other arm's drug starts within the window after index
    both = group == G["both_arms"]
    both_start = np.where(both, uniform_int(rng, 14, max(14, win.both_to - 30), n), NONE)

    agent, agent_start, agent_stop = _other_agents(n, group, variant, cut_rel, rng, win, agents)

    ae_day = np.where(ae_discontinued | (early & (reason == REASON["adverse_event"])),
                      stop - uniform_int(rng, 0, np.minimum(14, stop - 7), n),
                      uniform_int(rng, 14, np.maximum(eof - 14, 14), n))
    ae = ae | (early & (reason == REASON["adverse_event"]))
    ae_discontinued = ae_discontinued | (early & (reason == REASON["adverse_event"]))
    return dict(has_arm=has_arm, stop=stop, stop_reason=reason, switch=switch, restart=restart,
                restart_stop=restart_stop, both_start=both_start, agent=agent, agent_start=agent_start,
                agent_stop=agent_stop, eof=eof, obs_end=obs_end, ae=ae, ae_day=ae_day,
                ae_discontinued=ae_discontinued, cut_rel=cut_rel)


def _other_agents(n, group, variant, cut_rel, rng, win: Windows, agents):
    """Other steroid-sparing agents: inside the window for planted patients, long before it for some others."""
    weights = {"methotrexate": 0.35, "tacrolimus": 0.2, "rituximab": 0.15, "cyclophosphamide": 0.1, "ivig": 0.1,
               "cyclosporine": 0.05, "leflunomide": 0.03, "tofacitinib": 0.02}
    agent = choose(rng, [weights.get(a, 0.05) for a in agents], n) if agents else np.full(n, -1, np.int8)
    planted = group == G["other_agents"]
    before = planted & (variant == 0)
    after = planted & (variant == 1)
    old = (group < 2) & (rng.random(n) < 0.08)           # harmless: stopped long before the window
    start = np.full(n, NONE)
    stop = np.full(n, NONE)
    stop_before = uniform_int(rng, win.other_from + 60, -30, n)
    stop = np.where(before, stop_before, stop)
    start = np.where(before, stop_before - uniform_int(rng, 100, 700, n), start)
    start_after = uniform_int(rng, 200, np.minimum(1500, np.minimum(cut_rel, win.other_to) - 30), n)
    start = np.where(after, start_after, start)
    stop_after = start_after + uniform_int(rng, 30, 400, n)
    stop = np.where(after, np.where((stop_after <= cut_rel) & (rng.random(n) < 0.6), stop_after, NONE), stop)
    stop_old = win.other_from - uniform_int(rng, 35, 600, n)
    stop = np.where(old, stop_old, stop)
    start = np.where(old, stop_old - uniform_int(rng, 90, 700, n), start)
    agent = np.where(before | after | old, agent, -1).astype(np.int8)
    return agent, start, stop


def _pft_days(n, group, variant, eof, cut_rel, obs_end, rng, win: Windows) -> dict[str, np.ndarray]:
    """Baseline, extra in-window, first follow-up visit days and the last day visits continue to."""
    lo = max(win.baseline_from + 15, -45)
    hi = min(win.baseline_to - 16, 14)
    base = uniform_int(rng, lo, hi, n) if hi >= lo else np.full(n, (win.baseline_from + win.baseline_to) // 2)
    base = np.broadcast_to(base, (n,)).copy()
    extra_hi = lo - 15
    extra = np.where((rng.random(n) < 0.10) & (extra_hi >= win.baseline_from + 10),
                     uniform_int(rng, win.baseline_from + 10, extra_hi, n), NONE)
    first = uniform_int(rng, max(75, win.baseline_to + 45), max(150, win.baseline_to + 120), n)
    no_base = (group == G["baseline_pft"]) & (variant == 0)
    base_fvc_missing = (group == G["baseline_pft"]) & (variant == 1)
    base = np.where(no_base, NONE, base)
    extra = np.where(group == G["baseline_pft"], NONE, extra)
    early = (group == G["follow_up"]) & (variant == 0) & win.as_treated
    first = np.where(early, eof + uniform_int(rng, 35, 75, n), first)
    near_cut = (group == G["follow_up"]) & ~early
    first = np.where(near_cut, cut_rel + uniform_int(rng, 30, 90, n), first)
    visit_end = np.minimum(cut_rel, np.maximum(eof, win.max_days) + uniform_int(rng, 0, 365, n))
    visit_end = np.where(group == G["index_before_cut"], obs_end, visit_end)
    visit_end = np.where(near_cut, first + 200, visit_end)
    return dict(base_visit=base, base_fvc_missing=base_fvc_missing, extra_visit=extra, first_visit=first,
                visit_end=visit_end)
