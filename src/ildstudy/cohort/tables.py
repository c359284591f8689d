"""The analysis tables of a cohort, as Ibis expressions over the per-patient status.

Rules (``docs/protocol.md``, "Rules: the analysis tables"):

- patients: one row per cohort patient with arm, covariates, baselines, follow-up and treatment end;
- outcomes (long): baseline PFT at month 0, follow-up PFTs at their months since index, and the
  prednisone-equivalent dose at each protocol dose month inside follow-up;
- adverse events between index and the end of follow-up, of the patient's arm drug or of no named drug.

Each function returns an expression; :mod:`ildstudy.cohort.build` executes them and fixes the column types.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ildstudy.cohort.days import days_since, flag, left_join_on_patient, month_day, to_months
from ildstudy.cohort.source import Sources, drug_arm_case
from ildstudy.data.schema import ANTISYNTHETASE, PATIENTS
from ildstudy.reference.glucocorticoids import prednisone_factors
from ildstudy.variables import covariates, outcome_spec

#: The built-in PFT outcomes and the dose outcome (other outcomes: :mod:`ildstudy.variables`).
PFT_OUTCOMES = ("fvc_pct_pred", "dlco_pct_pred")
DOSE_OUTCOME = "prednisone_mg"
#: Columns of the patients table before the covariates, and after them.
LEADING_COLUMNS = ("patient_id", "arm", "index_date")
FOLLOW_UP_COLUMNS = ("follow_up_months", "follow_up_end", "treatment_months", "discontinued", "treatment_end",
                     "stop_reason", "treatment_end_drug")


def prednisone_doses(src: Sources, cohort: ir.Table, protocol, months) -> ir.Table:
    """``patient_id, months, day, value, n_missing_dose`` at each of ``months`` inside follow-up.

    ``cohort`` has ``patient_id, index_date, end_day``. The dose on day index + round(m x 30.4375) is the sum
    of ``daily_dose_mg x factor`` over glucocorticoid prescriptions active that day (``start <= day < stop``;
    no stop: active up to the data cut, which follow-up never passes). No active glucocorticoid: 0.
    ``value`` is NULL when an active prescription has no dose (``n_missing_dose`` > 0).
    """
    grid = ibis.union(*(
        cohort.filter(cohort.end_day >= month_day(m)).select(
            "patient_id", "index_date", months=ibis.literal(float(m), "float64"),
            day=ibis.literal(month_day(m), "int64"))
        for m in months
    ), distinct=False)
    factors = sorted(prednisone_factors(protocol.glucocorticoids).items())
    gc = src.medications
    gc = gc.filter(gc.start_date.notnull() & gc.generic.isin([k for k, _ in factors]))
    gc = gc.select(gc_patient=gc.patient_id, start_date=gc.start_date, stop_date=gc.stop_date,
                   dose=gc.daily_dose_mg * gc.generic.cases(*factors, else_=ibis.null("float64")))
    active = grid.join(gc, [
        grid.patient_id == gc.gc_patient,
        days_since(gc.start_date, grid.index_date) <= grid.day,
        gc.stop_date.isnull() | (days_since(gc.stop_date, grid.index_date) > grid.day),
    ])
    summed = active.group_by(["patient_id", "months"]).aggregate(
        total=active.dose.sum(), n_missing_dose=flag(active.dose.isnull()).sum())
    out = grid.left_join(summed, ["patient_id", "months"])
    n_missing = out.n_missing_dose.fill_null(0)
    return out.select(
        "patient_id", "months", "day",
        value=ibis.cases((n_missing > 0, ibis.null("float64")), else_=out.total.fill_null(0.0)),
        n_missing_dose=n_missing,
    )


def cohort_doses(src: Sources, status: ir.Table, protocol) -> ir.Table:
    """:func:`prednisone_doses` of the cohort patients at month 0 and every protocol dose month."""
    c = status.filter(status.step.isnull()).select("patient_id", "index_date", "end_day")
    return prednisone_doses(src, c, protocol, sorted({0.0, *protocol.analysis.dose_months}))


def covariate_columns() -> list[tuple[str, str]]:
    """``(column, dtype)`` of every registered covariate, in registration order, one per column."""
    out: dict[str, str] = {}
    for spec in covariates().values():
        out.setdefault(spec.column, spec.dtype)
    return list(out.items())


def patients_table(src: Sources, status: ir.Table, doses: ir.Table, protocol) -> ir.Table:
    """One row per cohort patient (``status`` is :func:`~ildstudy.cohort.steps.patient_status`, ``doses``
    is :func:`cohort_doses`): :data:`LEADING_COLUMNS`, every registered covariate
    (:mod:`ildstudy.variables`, derived from the baseline row), then :data:`FOLLOW_UP_COLUMNS`."""
    c = status.filter(status.step.isnull())
    pat = src.patients.select(*(col.name for col in PATIENTS.columns if col.name != "diagnosis"))
    ab = src.antibodies
    positive = ab.filter(ab.antibody.isin(list(ANTISYNTHETASE)) & (ab.result == "positive"))
    positive = positive.group_by("patient_id").aggregate(antisynthetase_hits=positive.count())
    dose0 = doses.filter(doses.months == 0.0)
    dose0 = dose0.select("patient_id", baseline_prednisone_mg=dose0.value)

    t = c.select("patient_id", "arm", "index_date", "diagnosis", "baseline_fvc_pct_pred",
                 "baseline_dlco_pct_pred", "end_day", "end_reason", "admin_end_day", "treatment_end_day",
                 "treatment_end", "treatment_end_drug", "course_stop_reason")
    for part in (pat, positive, dose0):
        t = left_join_on_patient(t, part)
    by_column = {}
    for spec in covariates().values():
        by_column.setdefault(spec.column, spec.derive(t))
    discontinued = t.treatment_end_day.notnull() & (t.treatment_end_day <= t.admin_end_day)
    return t.select(
        "patient_id", "arm", "index_date",
        **by_column,
        follow_up_months=to_months(t.end_day),
        follow_up_end=t.end_reason,
        treatment_months=to_months(ibis.cases((discontinued, t.treatment_end_day), else_=t.admin_end_day)),
        discontinued=discontinued,
        treatment_end=ibis.cases((discontinued, t.treatment_end), else_=ibis.null("string")),
        stop_reason=ibis.cases((discontinued & (t.treatment_end == "stop"), t.course_stop_reason),
                               else_=ibis.null("string")),
        treatment_end_drug=ibis.cases((discontinued, t.treatment_end_drug), else_=ibis.null("string")),
    )


def outcomes_table(src: Sources, status: ir.Table, doses: ir.Table, protocol) -> ir.Table:
    """Long outcomes ``patient_id, outcome, months, value`` for the protocol's outcomes and those its
    ``[progression]`` needs (:meth:`~ildstudy.protocol.Protocol.cohort_outcomes`, registered in
    :mod:`ildstudy.variables`): a ``pft`` outcome's baseline value (``baseline_<column>`` of ``status``) at
    month 0, then its column in every PFT after the baseline window up to the end of follow-up; the
    ``glucocorticoids`` outcome at the dose months."""
    specs = [outcome_spec(name) for name in protocol.cohort_outcomes()]
    c = status.filter(status.step.isnull())
    parts: list[ir.Table] = []
    pft_specs = [s for s in specs if s.source == "pft"]
    if pft_specs:
        p = src.pft.join(c.select("patient_id", "index_date", "end_day"), "patient_id")
        p = p.filter(p.test_date.notnull())
        p = p.mutate(d=days_since(p.test_date, p.index_date))
        p = p.filter((p.d > protocol.baseline.to_days) & (p.d <= p.end_day))
        for spec in pft_specs:
            col = spec.column
            base = c.filter(c[f"baseline_{col}"].notnull())
            parts.append(base.select("patient_id", outcome=ibis.literal(spec.name),
                                     months=ibis.literal(0.0, "float64"),
                                     value=base[f"baseline_{col}"].cast("float64")))
            rows = p.filter(p[col].notnull())
            parts.append(rows.select("patient_id", outcome=ibis.literal(spec.name),
                                     months=to_months(rows.d), value=rows[col].cast("float64")))
    for spec in specs:
        if spec.source == "glucocorticoids":
            d = doses.filter(doses.value.notnull() & doses.months.isin(list(protocol.analysis.dose_months)))
            parts.append(d.select("patient_id", outcome=ibis.literal(spec.name), months=d.months, value=d.value))
    return ibis.union(*parts, distinct=False)


def missing_dose_count(doses: ir.Table) -> ir.Scalar:
    """Number of (patient, dose month) evaluations left without a value because a dose was missing."""
    return flag(doses.n_missing_dose > 0).sum()


def adverse_events_table(src: Sources, status: ir.Table, protocol) -> ir.Table:
    """``patient_id, months, category, drug, serious, led_to_discontinuation`` inside follow-up.

    Events from index to the end of follow-up (inclusive) whose drug is empty or an arm drug of the
    patient's arm; ``drug`` is the generic name.
    """
    c = status.filter(status.step.isnull()).select("patient_id", "index_date", "end_day", "arm")
    e = src.adverse_events.join(c, "patient_id")
    e = e.filter(e.event_date.notnull())
    e = e.mutate(d=days_since(e.event_date, e.index_date))
    own_drug = drug_arm_case(e.generic, protocol.arm_of_drug()) == e.arm
    e = e.filter((e.d >= 0) & (e.d <= e.end_day) & (e.generic.isnull() | own_drug))
    return e.select("patient_id", months=to_months(e.d), category=e.category, drug=e.generic,
                    serious=e.serious, led_to_discontinuation=e.led_to_discontinuation)
