"""The cohort steps as Ibis expressions: one row per registry patient, the first step it fails.

:func:`patient_status` builds a single per-patient expression: every patient in ``patients`` with what each
step needs (index date and arm, exposure flags, baseline PFT, end of follow-up, follow-up PFTs) and
``step`` -- the id of the first step the patient fails, NULL for cohort patients. Because ``step`` is one
``CASE`` over the steps in protocol order, each patient is excluded at exactly one step by construction;
:func:`ildstudy.cohort.build_cohort` checks it again on the result.

Records dated after the data cut are not used, except that the ``index_before_cut`` step looks at arm-drug
starts after it (to count the patients whose index falls after the cut).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from ildstudy.cohort.days import days_since, flag, left_join_on_patient
from ildstudy.cohort.followup import follow_up
from ildstudy.cohort.source import Sources, drug_arm_case


@dataclass(frozen=True, slots=True)
class Step:
    """One cohort step: its id (``step`` in the attrition table) and the reason shown for exclusions."""

    id: str
    reason: str


#: The steps in order; a patient leaves at the first one it fails (docs/protocol.md).
STEPS: tuple[Step, ...] = (
    Step("population", "not myositis with ILD"),
    Step("arm_drug", "never exposed to an arm drug"),
    Step("index_before_cut", "index date after the data cut"),
    Step("ild_before_index", "ILD not diagnosed by index"),
    Step("washout", "not a new user (no registry record before the washout)"),
    Step("both_arms", "exposed to both arms"),
    Step("other_agents", "other steroid-sparing agent"),
    Step("baseline_pft", "no baseline PFT"),
    Step("follow_up", "no follow-up measurement"),
)
#: Steps that exclude nobody unless their protocol setting is on: ``ild_before_index``
#: (``population.require_ild_before_index``), ``washout`` (``index.washout_days`` > 0), ``follow_up``
#: (``follow_up.require_follow_up_measurement``).
OPTIONAL_STEPS: tuple[str, ...] = ("ild_before_index", "washout", "follow_up")
STEP_IDS: tuple[str, ...] = tuple(s.id for s in STEPS)
#: The first step after which every remaining patient has an arm (used for per-arm attrition counts).
FIRST_STEP_WITH_ARM = "arm_drug"


def _cut(protocol) -> ir.DateValue:
    return ibis.date(protocol.index.data_cut.isoformat())


def index_dates(src: Sources, protocol) -> ir.Table:
    """``patient_id, index_date, arm, index_drug`` for every patient with an arm-drug prescription.

    Index = first start of any arm drug (after the data cut too); the arm is that drug's arm. Two arms
    started the same first day: the arm listed first in the protocol (the patient then fails ``both_arms``).
    """
    arm_of = protocol.arm_of_drug()
    order = [(a.name, i) for i, a in enumerate(protocol.arms)]
    m = src.medications
    m = m.filter(m.start_date.notnull() & m.generic.isin(sorted(arm_of)))
    m = m.mutate(arm=drug_arm_case(m.generic, arm_of))
    m = m.mutate(arm_order=m.arm.cases(*order, else_=len(order)))
    m = m.mutate(rank=ibis.row_number().over(group_by=m.patient_id,
                                             order_by=[m.start_date, m.arm_order, m.generic]))
    first = m.filter(m.rank == 0)
    return first.select("patient_id", index_date=first.start_date, arm=first.arm, index_drug=first.generic)


def exposure_flags(src: Sources, index: ir.Table, protocol) -> ir.Table:
    """``patient_id, both_arms_hit, other_agents_hit`` (1/0): a prescription overlapping the step's window.

    A prescription covers ``[start, stop or data cut]`` (inclusive), cut at the data cut; prescriptions
    starting after the cut are not used. Windows are days relative to index, inclusive.
    """
    cut = _cut(protocol)
    both, other = protocol.exclusions.both_arms, protocol.exclusions.other_agents
    j = src.medications.join(index, "patient_id")
    j = j.filter(j.start_date.notnull() & (j.start_date <= cut))
    s = days_since(j.start_date, j.index_date)
    e = days_since(ibis.least(j.stop_date.fill_null(cut), cut), j.index_date)
    drug_arm = drug_arm_case(j.generic, protocol.arm_of_drug())
    both_hit = drug_arm.notnull() & (drug_arm != j.arm) & (s <= both.to_days) & (e >= both.from_days)
    other_hit = j.generic.isin(sorted(other.drugs)) & (s <= other.to_days) & (e >= other.from_days)
    return j.group_by("patient_id").aggregate(both_arms_hit=flag(both_hit).max(),
                                              other_agents_hit=flag(other_hit).max())


def first_record_day(src: Sources, index: ir.Table) -> ir.Table:
    """``patient_id, first_record_day``: days from index to the patient's earliest dated registry record
    (a prescription start, PFT, antibody test, adverse event or the ILD diagnosis date). Whether it is on or
    before index - washout depends only on records dated before index."""
    parts = [
        src.medications.select("patient_id", d=src.medications.start_date),
        src.pft.select("patient_id", d=src.pft.test_date),
        src.antibodies.select("patient_id", d=src.antibodies.test_date),
        src.adverse_events.select("patient_id", d=src.adverse_events.event_date),
        src.patients.select("patient_id", d=src.patients.ild_diagnosis_date),
    ]
    rows = ibis.union(*parts, distinct=False)
    rows = rows.filter(rows.d.notnull()).group_by("patient_id").aggregate(first=rows.d.min())
    j = rows.join(index, "patient_id")
    return j.select("patient_id", first_record_day=days_since(j.first, j.index_date))


def pft_outcome_columns(protocol) -> list[str]:
    """PFT columns carried from the baseline PFT: FVC % and DLCO % always, then the protocol's other
    ``pft`` outcomes (registered in :mod:`ildstudy.variables`; with those ``[progression]`` needs)."""
    from ildstudy.variables import outcome_spec

    cols = ["fvc_pct_pred", "dlco_pct_pred"]
    for name in protocol.cohort_outcomes():
        spec = outcome_spec(name)
        if spec.source == "pft" and spec.column not in cols:
            cols.append(spec.column)
    return cols


def baseline_pft(src: Sources, index: ir.Table, protocol) -> ir.Table:
    """``patient_id, baseline_day, baseline_fvc_pct_pred, baseline_dlco_pct_pred`` (and ``baseline_<column>``
    for the protocol's other PFT outcomes, :func:`pft_outcome_columns`).

    The PFT with FVC % predicted inside the baseline window (and not after the data cut) closest to index;
    ties: the earlier; several on that day: the one with DLCO %, then the higher FVC %, then the higher DLCO %.
    """
    window = protocol.baseline
    p = src.pft.join(index, "patient_id")
    p = p.filter(p.fvc_pct_pred.notnull() & p.test_date.notnull() & (p.test_date <= _cut(protocol)))
    p = p.mutate(d=days_since(p.test_date, p.index_date))
    p = p.filter((p.d >= window.from_days) & (p.d <= window.to_days))
    p = p.mutate(rank=ibis.row_number().over(
        group_by=p.patient_id,
        order_by=[p.d.abs(), p.d, flag(p.dlco_pct_pred.isnull()), p.fvc_pct_pred.desc(),
                  p.dlco_pct_pred.fill_null(-1.0).desc()]))
    b = p.filter(p.rank == 0)
    return b.select("patient_id", baseline_day=b.d,
                    **{f"baseline_{c}": b[c] for c in pft_outcome_columns(protocol)})


def follow_up_pft_counts(src: Sources, index_end: ir.Table, protocol) -> ir.Table:
    """``patient_id, n_follow_up_pft``: PFTs with FVC % after the baseline window, on or before the end of
    follow-up. ``index_end`` has ``patient_id, index_date, end_day``."""
    p = src.pft.join(index_end, "patient_id")
    p = p.filter(p.fvc_pct_pred.notnull() & p.test_date.notnull())
    p = p.mutate(d=days_since(p.test_date, p.index_date))
    p = p.filter((p.d > protocol.baseline.to_days) & (p.d <= p.end_day))
    return p.group_by("patient_id").aggregate(n_follow_up_pft=p.count())


def _ild_after_index(w: ir.Table, protocol) -> ir.BooleanValue:
    """ILD diagnosis date missing or after index + tolerance (only with ``require_ild_before_index``)."""
    pop = protocol.population
    if not pop.require_ild_before_index:
        return ibis.literal(False)
    late = days_since(w.ild_diagnosis_date, w.index_date) > pop.ild_diagnosis_tolerance_days
    return w.ild_diagnosis_date.isnull() | late.fill_null(True)


def _not_new_user(w: ir.Table, protocol) -> ir.BooleanValue:
    """No registry record on or before index - ``washout_days`` (only with ``washout_days`` > 0)."""
    n = protocol.index.washout_days
    if n <= 0:
        return ibis.literal(False)
    return w.first_record_day.isnull() | (w.first_record_day > -n).fill_null(True)


def patient_status(src: Sources, protocol, keep: Callable[[ir.Table, str], ir.Table] | None = None) -> ir.Table:
    """One row per registry patient: the step features and ``step``, the first step failed (NULL: in cohort).

    Columns: ``patient_id, diagnosis, ild, ild_diagnosis_date, index_date, arm, index_drug, both_arms_hit,
    other_agents_hit, first_record_day, baseline_day, baseline_<pft column>...``, the columns of
    :func:`ildstudy.cohort.followup.follow_up`, ``n_follow_up_pft`` and ``step``. ``keep(expr, name)``, when
    given, stores an intermediate result (index dates, follow-up) and returns the stored table.
    """
    keep = keep or (lambda expr, name: expr)
    pop = protocol.population
    index = keep(index_dates(src, protocol), "index")
    fu = keep(follow_up(src, index, protocol), "follow_up")
    index_end = index.join(fu, "patient_id").select("patient_id", "index_date", "end_day")

    w = src.patients.select("patient_id", "diagnosis", "ild", "ild_diagnosis_date")
    for part in (index, exposure_flags(src, index, protocol), first_record_day(src, index),
                 baseline_pft(src, index, protocol), fu, follow_up_pft_counts(src, index_end, protocol)):
        w = left_join_on_patient(w, part)

    in_population = w.diagnosis.isin(list(pop.diagnoses))
    if pop.require_ild:
        in_population = in_population & w.ild
    failed = {
        "population": ~in_population.fill_null(False),
        "arm_drug": w.index_date.isnull(),
        "index_before_cut": w.index_date > _cut(protocol),
        "ild_before_index": _ild_after_index(w, protocol),
        "washout": _not_new_user(w, protocol),
        "both_arms": w.both_arms_hit.fill_null(0) == 1,
        "other_agents": w.other_agents_hit.fill_null(0) == 1,
        "baseline_pft": w.baseline_day.isnull(),
        "follow_up": ((w.n_follow_up_pft.fill_null(0) == 0) if protocol.follow_up.require_follow_up_measurement
                      else ibis.literal(False)),
    }
    assert tuple(failed) == STEP_IDS
    step = ibis.cases(*((cond, sid) for sid, cond in failed.items()), else_=ibis.null("string"))
    return w.mutate(step=step)
