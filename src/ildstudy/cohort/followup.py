"""End of treatment and end of follow-up, per patient, as Ibis expressions.

Rules (``docs/protocol.md``, "Rules: how the cohort is built"): the index course is the chain of
prescriptions of the patient's arm that starts at index, each link starting on or before the latest stop so
far + ``grace_days`` (an ongoing prescription has no stop). The end of treatment is the earlier of the course's
stop and the first start after index of a drug of the other arm (a *switch*) or of an other agent (an
*add-on*); the switch/add-on and its drug are recorded. Follow-up
ends at the earliest of index + ``max_months``, the data cut and -- as-treated only -- the end of
treatment + ``grace_days``. All quantities are whole days since index.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ildstudy.cohort.days import OPEN_END, days_since, left_join_on_patient, month_day
from ildstudy.cohort.source import Sources


def treatment_course(src: Sources, index: ir.Table, protocol) -> ir.Table:
    """The index course: ``patient_id, course_stop_day`` (NULL: ongoing), ``course_stop_reason``.

    ``index`` has ``patient_id, index_date, arm``.
    """
    grace = protocol.follow_up.grace_days
    arm_of = protocol.arm_of_drug()
    own = src.medications.join(index, "patient_id")
    own = own.filter(own.start_date.notnull() & own.generic.isin(sorted(arm_of)))
    own = own.filter(own.generic.cases(*sorted(arm_of.items()), else_=ibis.null("string")) == own.arm)
    own = own.mutate(s=days_since(own.start_date, own.index_date),
                     e=days_since(own.stop_date, own.index_date).fill_null(OPEN_END))
    order = ["s", "e"]
    own = own.mutate(latest=own.e.max().over(group_by="patient_id", order_by=order, rows=(None, 0)))
    own = own.mutate(before=own.latest.lag().over(group_by="patient_id", order_by=order))
    own = own.mutate(gap=ibis.cases((own.s > own.before + grace, 1), else_=0))
    own = own.mutate(link=own.gap.sum().over(group_by="patient_id", order_by=order, rows=(None, 0)))
    course = own.filter(own.link == 0)
    # The course's stop and the reason recorded on the prescription that stops last.
    course = course.mutate(last=ibis.row_number().over(
        group_by=course.patient_id,
        order_by=[course.e.desc(), course.s.desc(), course.stop_reason.fill_null("~").asc()]))
    last = course.filter(course.last == 0)
    return last.select(
        "patient_id",
        course_stop_day=ibis.cases((last.e >= OPEN_END, ibis.null("int64")), else_=last.e),
        course_stop_reason=last.stop_reason,
    )


def switch_day(src: Sources, index: ir.Table, protocol) -> ir.Table:
    """``patient_id, switch_day, switch_kind, switch_drug``: the first start, after index (day >= 1), of the
    other arm's drug (kind ``"switch"``) or an other agent (``"add_on"``), and its generic name. Same day:
    a switch before an add-on, then drugs alphabetically."""
    arm_of = protocol.arm_of_drug()
    others = sorted(protocol.exclusions.other_agents.drugs)
    j = src.medications.join(index, "patient_id")
    j = j.filter(j.start_date.notnull())
    drug_arm = j.generic.cases(*sorted(arm_of.items()), else_=ibis.null("string"))
    other_arm = drug_arm.notnull() & (drug_arm != j.arm)
    j = j.filter(other_arm | j.generic.isin(others))
    j = j.mutate(s=days_since(j.start_date, j.index_date),
                 kind=ibis.cases((other_arm, "switch"), else_="add_on"))
    j = j.filter(j.s > 0)
    j = j.mutate(rank=ibis.row_number().over(group_by=j.patient_id, order_by=[j.s, j.kind.desc(), j.generic]))
    first = j.filter(j.rank == 0)
    return first.select("patient_id", switch_day=first.s, switch_kind=first.kind, switch_drug=first.generic)


def follow_up(src: Sources, index: ir.Table, protocol) -> ir.Table:
    """Per patient with an index date:

    ``patient_id, admin_end_day`` (index + max_months or data cut, whichever is first),
    ``treatment_end_day`` (NULL: still on the arm drug, unswitched), ``treatment_end`` ("stop" | "switch" |
    "add_on" | NULL), ``treatment_end_drug`` (the drug switched to or added; NULL for a stop),
    ``course_stop_reason``, ``end_day`` (end of follow-up) and ``end_reason`` ("treatment_end" |
    "max_months" | "data_cut").
    """
    fu = protocol.follow_up
    max_day = month_day(fu.max_months)
    cut = ibis.date(protocol.index.data_cut.isoformat())
    base = index.select("patient_id", cut_day=days_since(cut, index.index_date))
    t = left_join_on_patient(base, treatment_course(src, index, protocol))
    t = left_join_on_patient(t, switch_day(src, index, protocol))
    stop_first = t.course_stop_day.notnull() & (t.switch_day.isnull() | (t.course_stop_day <= t.switch_day))
    t = t.mutate(
        admin_end_day=ibis.least(t.cut_day, max_day),
        treatment_end_day=ibis.cases((stop_first, t.course_stop_day), else_=t.switch_day),
        treatment_end=ibis.cases((stop_first, "stop"), (t.switch_day.notnull(), t.switch_kind),
                                 else_=ibis.null("string")),
        treatment_end_drug=ibis.cases((stop_first, ibis.null("string")), else_=t.switch_drug),
    )
    if fu.analysis == "as_treated":
        treated_end = t.treatment_end_day + fu.grace_days
        ends_early = t.treatment_end_day.notnull() & (treated_end < t.admin_end_day)
    else:
        treated_end = t.admin_end_day
        ends_early = ibis.literal(False)
    return t.select(
        "patient_id", "admin_end_day", "treatment_end_day", "treatment_end", "treatment_end_drug",
        "course_stop_reason",
        end_day=ibis.cases((ends_early, treated_end), else_=t.admin_end_day),
        end_reason=ibis.cases((ends_early, "treatment_end"), (t.cut_day < max_day, "data_cut"),
                              else_="max_months"),
    )
