"""Medication rows: arm-drug courses, switches, other agents, glucocorticoid schedules, other drugs.

Built per block of patients from a :class:`~ildstudy.synth.plan.Plan`, vectorised: each kind of
prescription is a block of rows (patient, drug, start, stop, dose, stop reason) and the blocks are
concatenated. Dates in a plan are offsets from the index date; rows get absolute days here.

The glucocorticoid schedule makes the prednisone-equivalent dose evaluated on each dose-month day
(index + round(m x 30.4375)) equal to the outcome model's value for that patient and month: one
prescription row per dose month, changing dose between evaluation days (never within 7 days of one),
written as prednisone, prednisolone or methylprednisolone converted with the protocol's equivalents.
Bursts, pre-index induction doses and split doses (two glucocorticoids at once, summing to the
scheduled dose) add realistic mess without changing any evaluated dose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ildstudy.data.schema import STOP_REASONS
from ildstudy.synth.balance import balance_to_design
from ildstudy.synth.calibration import MODELS
from ildstudy.synth.columns import Coded, Dates, Table
from ildstudy.synth.plan import REASON, Plan
from ildstudy.synth.spelling import DRUG_SPELLINGS, spell
from ildstudy.synth.windows import NONE, Windows, choose, row_order, uniform_int

COLUMNS = ("patient", "drug", "start", "stop", "dose", "reason")
#: glucocorticoids the schedule is written in, with the rounding step of a daily dose (mg of the drug)
STEROIDS = ("prednisone", "prednisolone", "methylprednisolone")
STEROID_STEP = {"prednisone": 0.5, "prednisolone": 0.5, "methylprednisolone": 1.0}
ARM_DOSES = {"azathioprine": (50.0, 100.0, 150.0), "mycophenolate mofetil": (1000.0, 2000.0, 3000.0),
             "mycophenolic acid": (720.0, 1440.0, 2160.0)}
AGENT_DOSES = {"tacrolimus": 4.0, "cyclosporine": 200.0, "leflunomide": 20.0, "tofacitinib": 10.0}


@dataclass(frozen=True)
class Drugs:
    """The generic drug names rows refer to (codes), built from the protocol."""

    names: tuple[str, ...]
    arm_drugs: tuple[tuple[int, ...], tuple[int, ...]]
    agents: tuple[int, ...]
    equivalent: dict[str, float]

    @classmethod
    def from_protocol(cls, protocol) -> "Drugs":
        names: list[str] = []

        def code(name: str) -> int:
            if name not in names:
                names.append(name)
            return names.index(name)

        arms = tuple(tuple(code(d) for d in arm.drugs) for arm in protocol.arms)
        agents = tuple(code(d) for d in protocol.exclusions.other_agents.drugs)
        for d in (*STEROIDS, "methylprednisolone iv", "hydroxychloroquine", "trimethoprim-sulfamethoxazole",
                  "omeprazole", "calcium carbonate / vitamin D"):
            code(d)
        equivalent = {k.lower(): v for k, v in protocol.glucocorticoids.items()}
        for s in STEROIDS:
            if s not in equivalent:
                raise ValueError(f"synthetic registry: the protocol's [glucocorticoids] must include {s}")
        return cls(tuple(names), arms, agents, equivalent)

    def code(self, name: str) -> int:
        return self.names.index(name)


def _block(patient, drug, start, stop, dose, reason=None) -> dict[str, np.ndarray]:
    n = len(patient)
    return {"patient": np.asarray(patient, np.int64), "drug": np.broadcast_to(np.asarray(drug, np.int32), (n,)),
            "start": np.asarray(start, np.int64), "stop": np.broadcast_to(np.asarray(stop, np.int64), (n,)),
            "dose": np.broadcast_to(np.asarray(dose, np.float64), (n,)),
            "reason": np.full(n, -1, np.int8) if reason is None else np.asarray(reason, np.int8)}


def medication_rows(plan: Plan, rng: np.random.Generator, win: Windows, drugs: Drugs) -> Table:
    """All prescription rows of the patients of ``plan`` (canonical ``medications`` columns)."""
    blocks = [*_arm_courses(plan, rng, win, drugs), *_other_agents(plan, drugs),
              *_glucocorticoids(plan, rng, win, drugs), *_other_drugs(plan, rng, drugs)]
    rows = {k: np.concatenate([b[k] for b in blocks]) for k in COLUMNS}
    order = row_order(rows["patient"], rows["start"], rows["drug"])
    rows = {k: v[order] for k, v in rows.items()}
    spelled, vocab = spell(rows["drug"], drugs.names, DRUG_SPELLINGS, rng, plain=0.2)
    index = plan.index[rows["patient"]]
    stop = np.where(rows["stop"] >= NONE, NONE, index + rows["stop"])
    dose = rows["dose"].copy()
    steroid = np.isin(rows["drug"], [drugs.code(s) for s in (*STEROIDS, "methylprednisolone iv")])
    dose[(rng.random(len(dose)) < 0.03) & ~steroid] = np.nan    # a few doses not recorded (never a steroid's)
    return {"patient_id": rows["patient"], "drug": Coded(spelled, vocab), "start_date": Dates(index + rows["start"]),
            "stop_date": Dates(stop), "daily_dose_mg": dose,
            "stop_reason": Coded(rows["reason"].astype(np.int32), STOP_REASONS)}


def _arm_courses(plan: Plan, rng, win: Windows, drugs: Drugs) -> list[dict]:
    """The course that starts at index (1-3 chained rows), restarts, switches, and planted both-arm drugs."""
    n = plan.n
    pid = np.arange(n)
    first_drug, other_drug, second_in_arm = _arm_drug_codes(plan, rng, drugs)
    stop = plan.stop
    n_rows = choose(rng, (0.25, 0.35, 0.40), n) + 1
    t1 = uniform_int(rng, 14, 42, n)
    t2 = t1 + uniform_int(rng, 28, 150, n)
    n_rows = np.where(t1 + 30 >= stop, 1, np.where(t2 + 30 >= stop, np.minimum(n_rows, 2), n_rows))
    gap_max = max(0, min(14, win.grace - 7))
    gaps = np.where(rng.random((n, 2)) < 0.15, uniform_int(rng, 0, gap_max, (n, 2)), 0)
    starts = np.stack([np.zeros(n, np.int64), t1 + gaps[:, 0], t2 + gaps[:, 1]], axis=1)
    stops = np.stack([t1, t2, stop], axis=1)
    stops[np.arange(n), n_rows - 1] = stop                       # the last row ends the course
    levels = np.minimum(np.arange(3)[None, :] + (n_rows == 1)[:, None].astype(int), 2)
    drug = np.repeat(first_drug[:, None], 3, axis=1)
    # some patients change brand/salt inside the arm (CellCept -> Myfortic): still one chained course
    drug[:, 2] = np.where((second_in_arm >= 0) & (rng.random(n) < 0.15), second_in_arm, drug[:, 2])
    keep = (np.arange(3)[None, :] < n_rows[:, None]) & plan.has_arm[:, None]
    reason = np.where(np.arange(3)[None, :] == (n_rows - 1)[:, None], plan.stop_reason[:, None], -1)
    blocks = [_block(np.repeat(pid[:, None], 3, 1)[keep], drug[keep], starts[keep], stops[keep],
                     _arm_dose(drug, levels, drugs)[keep], reason[keep])]

    r = plan.restart < NONE
    reason_restart = np.where(plan.restart_stop < NONE, REASON["other"], -1)
    blocks.append(_block(pid[r], first_drug[r], plan.restart[r], plan.restart_stop[r],
                         _arm_dose(first_drug[:, None], np.ones((n, 1), int), drugs)[r, 0], reason_restart[r]))
    s = plan.switch < NONE
    switch_stop = np.where(rng.random(n) < 0.3, plan.switch + uniform_int(rng, 90, 700, n), NONE)
    switch_stop = np.where(switch_stop <= win.cut - plan.index, switch_stop, NONE)
    blocks.append(_block(pid[s], other_drug[s], plan.switch[s], switch_stop[s],
                         _arm_dose(other_drug[:, None], np.full((n, 1), 2), drugs)[s, 0]))
    b = plan.both_start < NONE
    both_stop = np.where(rng.random(n) < 0.4, plan.both_start + uniform_int(rng, 60, 400, n), NONE)
    both_stop = np.where(both_stop <= plan.obs_end, both_stop, NONE)
    blocks.append(_block(pid[b], other_drug[b], plan.both_start[b], both_stop[b],
                         _arm_dose(other_drug[:, None], np.ones((n, 1), int), drugs)[b, 0]))
    return blocks


def _arm_drug_codes(plan: Plan, rng, drugs: Drugs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patient: the drug the course starts with, a drug of the other arm, a second drug of the arm."""
    n = plan.n
    first = np.empty(n, np.int32)
    other = np.empty(n, np.int32)
    second = np.full(n, -1, np.int32)
    for a in (0, 1):
        mine, theirs = drugs.arm_drugs[a], drugs.arm_drugs[1 - a]
        sel = plan.arm == a
        pick = np.where(rng.random(n) < 0.85, 0, choose(rng, np.ones(len(mine)), n)) if len(mine) > 1 \
            else np.zeros(n, int)
        first[sel] = np.asarray(mine)[pick][sel]
        other[sel] = np.asarray(theirs)[choose(rng, [0.85] + [0.15] * (len(theirs) - 1), n)][sel]
        if len(mine) > 1:
            alt = np.asarray(mine)[np.where(pick == 0, 1, 0)]
            second[sel] = alt[sel]
    return first, other, second


def _arm_dose(drug: np.ndarray, level: np.ndarray, drugs: Drugs) -> np.ndarray:
    table = np.array([ARM_DOSES.get(name, (np.nan,) * 3) for name in drugs.names])
    return table[drug, level]


def _other_agents(plan: Plan, drugs: Drugs) -> list[dict]:
    a = plan.agent >= 0
    if not a.any():
        return []
    code = np.asarray(drugs.agents)[plan.agent[a]]
    names = np.array(drugs.names, dtype=object)[code]
    start, stop = plan.agent_start[a], plan.agent_stop[a]
    infusion = names == "rituximab"                              # two infusions two weeks apart
    start = np.where(infusion & (stop < NONE), stop - 14, start)
    stop = np.where(infusion & (stop >= NONE), start + 14, stop)
    dose = np.array([AGENT_DOSES.get(nm, np.nan) for nm in names])
    return [_block(np.flatnonzero(a), code, start, stop, dose)]


def steroid_doses(plan: Plan, rng: np.random.Generator, win: Windows) -> np.ndarray:
    """Scheduled prednisone-equivalent mg/day at each dose month, shape (n, months): the model's value.

    A balanced plan adjusts the random effects to the evaluated dose months (day ``round(m x 30.4375)``
    on or before the end of follow-up of an eligible patient; :func:`~ildstudy.synth.balance.balance_to_design`).
    """
    m = MODELS["prednisone_mg"]
    months = np.asarray(win.dose_months)[None, :]
    treated = (plan.arm == 0).astype(float)[:, None]
    mean = m.fixed_mean(months, treated, plan.female[:, None], plan.age[:, None], plan.antisynthetase[:, None],
                        (plan.smoking > 0)[:, None])
    resid = m.residual_sd * rng.standard_normal(mean.shape)
    b = plan.re[:, 2, :]
    if plan.balanced:
        from ildstudy.synth.measurements import patient_design

        analysed = (plan.eligible[:, None] & (np.asarray(win.dose_days)[None, :] <= plan.eof[:, None])).ravel()
        pid = np.repeat(np.arange(plan.n)[:, None], months.shape[1], axis=1).ravel()
        t = np.broadcast_to(months, mean.shape).ravel()
        b = balance_to_design(b, pid, t, analysed, patient_design(plan), m.name, resid.ravel())
    y = mean + b[:, 0][:, None] + b[:, 1][:, None] * months + resid
    return np.maximum(y, 0.0)


def _glucocorticoids(plan: Plan, rng, win: Windows, drugs: Drugs) -> list[dict]:
    n = plan.n
    k_all = len(win.dose_days)
    e = np.asarray(win.dose_days, dtype=np.int64)
    valid = e[None, :] <= plan.obs_end[:, None]
    valid[:, 0] = True
    n_seg = valid.sum(axis=1)
    y = steroid_doses(plan, rng, win)
    # change points: segment k covers [c_k, c_{k+1}); c_0 before index, c_k in [e_{k-1}+7, e_k-7]
    c = np.empty((n, k_all + 1), np.int64)
    c[:, 0] = -uniform_int(rng, 14, 400, n)
    width = np.diff(e) - 13
    c[:, 1:k_all] = e[None, :-1] + 7 + np.floor(rng.random((n, k_all - 1)) * width[None, :]).astype(np.int64)
    last_e = e[n_seg - 1]
    room = plan.obs_end - last_e
    ends = np.where((room >= 30) & (rng.random(n) < 0.4), last_e + uniform_int(rng, 30, np.minimum(room, 300), n), NONE)
    c[:, k_all] = NONE
    c[np.arange(n), n_seg] = ends
    seg = np.arange(k_all)[None, :]
    keep = seg < n_seg[:, None]

    preferred = np.asarray([drugs.code(s) for s in STEROIDS])[choose(rng, (0.7, 0.15, 0.15), n)]
    drug = np.repeat(preferred[:, None], k_all, axis=1)
    drug = np.where(rng.random((n, k_all)) < 0.08, drugs.code("prednisone"), drug)
    split = (rng.random((n, k_all)) < 0.06) & (y >= 10.0)
    drug = np.where(split, drugs.code("prednisone"), drug)
    main_pred = np.where(split, y - 5.0, y)
    dose = _drug_mg(main_pred, drug, drugs)
    pid = np.repeat(np.arange(n)[:, None], k_all, axis=1)
    on = keep & (dose > 0)
    blocks = [_block(pid[on], drug[on], c[:, :-1][on], c[:, 1:][on], dose[on])]
    sp = keep & split
    blocks.append(_block(pid[sp], drugs.code("prednisolone"), c[:, :-1][sp], c[:, 1:][sp], 5.0))

    # induction dose before index, ending where the first scheduled row starts (same day)
    ind = rng.random(n) < 0.6
    ind_pred = y[:, 0] + 5.0 * uniform_int(rng, 1, 6, n)
    ind_dose = _drug_mg(ind_pred[:, None], preferred[:, None], drugs)[:, 0]
    blocks.append(_block(np.flatnonzero(ind), preferred[ind], (c[:, 0] - uniform_int(rng, 14, 120, n))[ind],
                         c[ind, 0], ind_dose[ind]))
    # flare bursts strictly between two evaluation days (overlapping the scheduled row)
    burst = (rng.random(n) < 0.10) & (n_seg >= 3)
    k = 1 + np.floor(rng.random(n) * np.maximum(n_seg - 2, 1)).astype(np.int64)
    k = np.minimum(k, k_all - 2)
    gap = e[k + 1] - e[k]
    start = e[k] + 10 + np.floor(rng.random(n) * (gap - 40)).astype(np.int64)
    iv = rng.random(n) < 0.5
    length = np.where(iv, 3, uniform_int(rng, 3, 10, n))
    bdrug = np.where(iv, drugs.code("methylprednisolone iv"), drugs.code("prednisone"))
    bdose = np.where(iv, np.where(rng.random(n) < 0.5, 500.0, 1000.0), np.where(rng.random(n) < 0.5, 40.0, 60.0))
    burst &= ((start + length) <= plan.obs_end) & (gap >= 60)
    blocks.append(_block(np.flatnonzero(burst), bdrug[burst], start[burst], (start + length)[burst], bdose[burst]))
    return blocks


def _drug_mg(prednisone_mg: np.ndarray, drug: np.ndarray, drugs: Drugs) -> np.ndarray:
    """mg of each row's glucocorticoid for a prednisone-equivalent dose, rounded to its tablet step."""
    per_pred = np.zeros(len(drugs.names))
    step = np.ones(len(drugs.names))
    for s in STEROIDS:
        per_pred[drugs.code(s)] = drugs.equivalent[s] / drugs.equivalent["prednisone"]
        step[drugs.code(s)] = STEROID_STEP[s]
    mg = prednisone_mg * per_pred[drug]
    return np.floor(mg / step[drug] + 0.5) * step[drug]


def _other_drugs(plan: Plan, rng, drugs: Drugs) -> list[dict]:
    """Drugs no rule uses: hydroxychloroquine, PJP prophylaxis, and two the drug table does not know."""
    n = plan.n
    blocks = []
    for name, p, dose in (("hydroxychloroquine", 0.15, 400.0), ("trimethoprim-sulfamethoxazole", 0.25, 480.0),
                          ("omeprazole", 0.10, 20.0), ("calcium carbonate / vitamin D", 0.08, np.nan)):
        has = rng.random(n) < p
        start = uniform_int(rng, -800, 60, n)
        stop = np.where(rng.random(n) < 0.5, start + uniform_int(rng, 60, 900, n), NONE)
        stop = np.where(stop <= plan.obs_end, stop, NONE)
        has &= start <= plan.obs_end
        blocks.append(_block(np.flatnonzero(has), drugs.code(name), start[has], stop[has], dose))
    return blocks
