"""A plain pandas reading of docs/protocol.md's cohort rules, used to check the synthetic registry.

This is deliberately independent of ``ildstudy.cohort`` (written from the document, one patient at a time
where that is clearest) so that the planted counts of ``truth.json`` are verified against the rules
themselves, not against the code under test. The only shared piece is the drug-name table
(``ildstudy.reference.drugs``), which the document names as the source of brand-name mappings.

The tests at the bottom check this reading on tiny hand-made registries.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from ildstudy.protocol import load_protocol
from ildstudy.reference.drugs import DrugNames

DAYS_PER_MONTH = 30.4375
STEPS = ("population", "arm_drug", "index_before_cut", "both_arms", "other_agents", "baseline_pft", "follow_up")
ANTISYNTHETASE = {"Jo-1", "PL-7", "PL-12", "EJ", "OJ", "KS", "Zo", "Ha"}


def _day(d) -> dt.date | None:
    return None if d is None or pd.isna(d) else pd.Timestamp(d).date()


def _true(v) -> bool:
    return v is not None and not pd.isna(v) and bool(v)


def _overlaps(rows: pd.DataFrame, lo: dt.date, hi: dt.date, cut: dt.date) -> bool:
    """Any prescription with start <= hi and (stop or cut) >= lo."""
    for start, stop in zip(rows["start"], rows["stop"]):
        if start <= hi and (stop if stop is not None else cut) >= lo:
            return True
    return False


def build_cohort(tables: dict[str, pd.DataFrame], protocol=None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Apply the cohort steps; return (one row per patient with its fate, excluded count per step).

    Columns: patient_id, step (first failed step, or "" for eligible), arm, index, eof (end of
    follow-up), baseline_date.
    """
    protocol = protocol or load_protocol("huapaya2019_published")
    names = DrugNames.from_protocol(protocol)
    cut = protocol.index.data_cut
    arm_of = protocol.arm_of_drug()
    agents = set(protocol.exclusions.other_agents.drugs)
    grace = protocol.follow_up.grace_days
    meds = tables["medications"].copy()
    meds["generic"] = [names.generic(d) for d in meds["drug"]]
    meds["start"] = [_day(d) for d in meds["start_date"]]
    meds["stop"] = [_day(d) for d in meds["stop_date"]]
    pft = tables["pft"].copy()
    pft["date"] = [_day(d) for d in pft["test_date"]]
    meds_by = dict(tuple(meds.groupby("patient_id")))
    pft_by = dict(tuple(pft[pft["fvc_pct_pred"].notna()].groupby("patient_id")))
    empty_m, empty_p = meds.iloc[:0], pft.iloc[:0]

    out = []
    for p in tables["patients"].itertuples(index=False):
        rec = {"patient_id": p.patient_id, "step": "", "arm": None, "index": None, "eof": None, "baseline_date": None}
        out.append(rec)
        if p.diagnosis not in protocol.population.diagnoses or (protocol.population.require_ild and not _true(p.ild)):
            rec["step"] = "population"
            continue
        m = meds_by.get(p.patient_id, empty_m)
        arm_rows = m[m["generic"].isin(list(arm_of))]
        if arm_rows.empty:
            rec["step"] = "arm_drug"
            continue
        index = min(arm_rows["start"])
        first_arms = {arm_of[g] for g in arm_rows.loc[arm_rows["start"] == index, "generic"]}
        assert len(first_arms) == 1, f"{p.patient_id}: both arms start on the index day"
        arm = first_arms.pop()
        rec.update(arm=arm, index=index)
        if index > cut:
            rec["step"] = "index_before_cut"
            continue
        other_arm = m[m["generic"].map(lambda g: g in arm_of and arm_of[g] != arm)]
        w = protocol.exclusions.both_arms
        if _overlaps(other_arm, index + dt.timedelta(w.from_days), index + dt.timedelta(w.to_days), cut):
            rec["step"] = "both_arms"
            continue
        agent_rows = m[m["generic"].isin(agents)]
        w = protocol.exclusions.other_agents
        if _overlaps(agent_rows, index + dt.timedelta(w.from_days), index + dt.timedelta(w.to_days), cut):
            rec["step"] = "other_agents"
            continue
        b = protocol.baseline
        pp = pft_by.get(p.patient_id, empty_p)
        lo, hi = index + dt.timedelta(b.from_days), index + dt.timedelta(b.to_days)
        window = pp[(pp["date"] >= lo) & (pp["date"] <= hi)]
        if window.empty:
            rec["step"] = "baseline_pft"
            continue
        dist = [(abs((d - index).days), d) for d in window["date"]]
        rec["baseline_date"] = min(dist)[1]                       # closest; ties: the earlier date
        eof = end_of_follow_up(m, arm, index, protocol, arm_of, agents, grace, cut)
        rec["eof"] = eof
        later = pp[(pp["date"] > hi) & (pp["date"] <= eof)]
        if later.empty:
            rec["step"] = "follow_up"
            continue
    fate = pd.DataFrame(out)
    counts = {s: int((fate["step"] == s).sum()) for s in STEPS}
    return fate, counts


def end_of_follow_up(m, arm, index, protocol, arm_of, agents, grace, cut) -> dt.date:
    """Earliest of index + max_months, the data cut, and (as-treated) end of treatment + grace days."""
    max_end = index + dt.timedelta(days=math.floor(protocol.follow_up.max_months * DAYS_PER_MONTH))
    ends = [max_end, cut]
    if protocol.follow_up.analysis == "as_treated":
        mine = m[m["generic"].map(lambda g: arm_of.get(g) == arm)].sort_values("start")
        course_stop: dt.date | None = dt.date.min
        for start, stop in zip(mine["start"], mine["stop"]):
            if start == index or (course_stop is not None and start <= course_stop + dt.timedelta(grace)):
                course_stop = None if (stop is None or course_stop is None) else max(course_stop, stop)
            elif start > index:
                break
        switches = m[m["generic"].map(lambda g: (g in arm_of and arm_of[g] != arm) or g in agents)]
        switch = min((s for s in switches["start"] if s > index), default=None)
        end_treatment = min(d for d in (course_stop, switch, dt.date.max) if d is not None)
        if end_treatment < dt.date.max - dt.timedelta(grace):
            ends.append(end_treatment + dt.timedelta(grace))
    return min(ends)


def adverse_event_patients(tables, fate: pd.DataFrame, protocol=None) -> dict[str, int]:
    """Eligible patients per arm with >= 1 event in [index, eof] whose drug is empty or of their arm."""
    protocol = protocol or load_protocol("huapaya2019_published")
    names = DrugNames.from_protocol(protocol)
    arm_of = protocol.arm_of_drug()
    elig = fate[fate["step"] == ""].set_index("patient_id")
    ae = tables["adverse_events"]
    hit = set()
    for pid, date, drug in zip(ae["patient_id"], ae["event_date"], ae["drug"]):
        if pid not in elig.index:
            continue
        r = elig.loc[pid]
        day = _day(date)
        generic = names.generic(drug) if drug is not None else None
        if r["index"] <= day <= r["eof"] and (drug is None or arm_of.get(generic) == r["arm"]):
            hit.add(pid)
    return {a.name: int(sum(1 for pid in hit if elig.loc[pid, "arm"] == a.name)) for a in protocol.arms}


def antisynthetase(tables) -> pd.Series:
    ab = tables["antibodies"]
    pos = ab[(ab["result"] == "positive") & ab["antibody"].isin(ANTISYNTHETASE)]
    return tables["patients"]["patient_id"].isin(set(pos["patient_id"]))


def prednisone_equivalent(meds_p: pd.DataFrame, day: dt.date, protocol, names: DrugNames, cut: dt.date) -> float:
    """Sum of daily_dose_mg x 5 / equivalent over glucocorticoid rows active on ``day`` (half-open)."""
    eq = {k.lower(): v for k, v in protocol.glucocorticoids.items()}
    total = 0.0
    for drug, start, stop, dose in zip(meds_p["drug"], meds_p["start"], meds_p["stop"], meds_p["daily_dose_mg"]):
        g = names.generic(drug)
        if g not in eq or pd.isna(dose):
            continue
        if start <= day and (day < stop if stop is not None else day <= cut):
            total += dose * eq["prednisone"] / eq[g]
    return total


def month_day(m: float) -> int:
    """Day offset of a protocol month, round(m x 30.4375) with halves rounded up (month 24 -> 731)."""
    return math.floor(m * DAYS_PER_MONTH + 0.5)


def analysis_tables(tables: dict[str, pd.DataFrame], fate: pd.DataFrame, protocol=None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(patients, outcomes) of the eligible patients, read from "Rules: the analysis tables".

    ``patients``: id, arm, female, age, antisynthetase, ever_smoker (0/1), follow_up_days.
    ``outcomes``: id, outcome, months, value -- the baseline PFT at month 0, PFTs after the baseline window
    up to the end of follow-up, and the prednisone-equivalent dose on each dose-month day inside follow-up.
    """
    protocol = protocol or load_protocol("huapaya2019_published")
    names = DrugNames.from_protocol(protocol)
    cut = protocol.index.data_cut
    el = fate[fate["step"] == ""]
    pts = tables["patients"].set_index("patient_id")
    asyn = pd.Series(antisynthetase(tables).to_numpy(), index=tables["patients"]["patient_id"])
    pft = tables["pft"].copy()
    pft["date"] = [_day(d) for d in pft["test_date"]]
    meds = tables["medications"].copy()
    meds["start"] = [_day(d) for d in meds["start_date"]]
    meds["stop"] = [_day(d) for d in meds["stop_date"]]
    pft_by, meds_by = dict(tuple(pft.groupby("patient_id"))), dict(tuple(meds.groupby("patient_id")))
    people, rows = [], []
    after = dt.timedelta(protocol.baseline.to_days)
    for r in el.itertuples(index=False):
        p = pts.loc[r.patient_id]
        people.append({"id": r.patient_id, "arm": r.arm, "female": int(p["sex"] == "F"),
                       "age": (r.index - _day(p["birth_date"])).days / 365.25,
                       "antisynthetase": int(asyn[r.patient_id]),
                       "ever_smoker": int(p["smoking_status"] in ("former", "current")),
                       "follow_up_days": (r.eof - r.index).days})
        pp = pft_by[r.patient_id]
        base = pp[(pp["date"] == r.baseline_date) & pp["fvc_pct_pred"].notna()].iloc[0]
        visits = [(0.0, base)] + [((q["date"] - r.index).days / DAYS_PER_MONTH, q) for _, q in
                                  pp[(pp["date"] > r.index + after) & (pp["date"] <= r.eof)].iterrows()]
        for months, q in visits:
            for outcome in ("fvc_pct_pred", "dlco_pct_pred"):
                if pd.notna(q[outcome]):
                    rows.append((r.patient_id, outcome, months, float(q[outcome])))
        for m in protocol.analysis.dose_months:
            day = r.index + dt.timedelta(days=month_day(m))
            if day <= r.eof:
                dose = prednisone_equivalent(meds_by[r.patient_id], day, protocol, names, cut)
                rows.append((r.patient_id, "prednisone_mg", float(m), dose))
    return pd.DataFrame(people), pd.DataFrame(rows, columns=["id", "outcome", "months", "value"])


# --- the reading itself, on hand-made registries ----------------------------------------------------------

def _registry(meds, pft, patients=None, events=()):
    d = pd.Timestamp
    patients = patients or [("A", "DM", True)]
    return {
        "patients": pd.DataFrame([{"patient_id": p, "diagnosis": dg, "ild": ild} for p, dg, ild in patients]),
        "medications": pd.DataFrame([{"patient_id": p, "drug": g, "start_date": d(s),
                                      "stop_date": d(e) if e else pd.NaT, "daily_dose_mg": dose}
                                     for p, g, s, e, dose in meds]),
        "pft": pd.DataFrame([{"patient_id": p, "test_date": d(t), "fvc_pct_pred": v} for p, t, v in pft]),
        "adverse_events": pd.DataFrame([{"patient_id": p, "event_date": d(t), "drug": g} for p, t, g in events],
                                       columns=["patient_id", "event_date", "drug"]),
    }


def test_reading_eligible_and_as_treated_end():
    reg = _registry(
        meds=[("A", " Imuran", "2010-01-01", "2010-03-01", 50), ("A", "azathioprine", "2010-03-20", "2011-01-01", 100),
              ("A", "CellCept", "2011-06-01", None, 2000)],
        pft=[("A", "2009-12-20", 60), ("A", "2010-06-01", 62)],
        events=[("A", "2010-12-01", "IMURAN"), ("A", "2011-12-01", None)],
    )
    fate, counts = build_cohort(reg)
    row = fate.iloc[0]
    assert row["step"] == "" and row["arm"] == "AZA"
    assert row["eof"] == dt.date(2011, 1, 31)                   # chained stop 2011-01-01 + 30 days
    assert row["baseline_date"] == dt.date(2009, 12, 20)
    assert adverse_event_patients(reg, fate) == {"AZA": 1, "MMF": 0}


@pytest.mark.parametrize("meds,pft,step", [
    ([("A", "hydroxychloroquine", "2010-01-01", None, 400)], [("A", "2010-01-01", 60)], "arm_drug"),
    ([("A", "Imuran", "2019-02-01", None, 50)], [("A", "2019-02-01", 60)], "index_before_cut"),
    ([("A", "Imuran", "2010-01-01", None, 50), ("A", "Myfortic", "2010-03-31", None, 720)],
     [("A", "2010-01-01", 60), ("A", "2010-06-01", 60)], "both_arms"),
    ([("A", "Imuran", "2010-01-01", None, 50), ("A", "MTX", "2008-01-01", "2009-01-01", 15)],
     [("A", "2010-01-01", 60), ("A", "2010-06-01", 60)], "other_agents"),
    ([("A", "Imuran", "2010-01-01", None, 50)], [("A", "2009-10-01", 60), ("A", "2010-06-01", 60)], "baseline_pft"),
    ([("A", "Imuran", "2010-01-01", "2010-02-01", 50)], [("A", "2010-01-01", 60), ("A", "2010-06-01", 60)],
     "follow_up"),
])
def test_reading_each_step(meds, pft, step):
    fate, counts = build_cohort(_registry(meds, pft))
    assert fate.iloc[0]["step"] == step
    assert counts[step] == 1


def test_reading_half_open_dose_changes():
    protocol = load_protocol("huapaya2019_published")
    names = DrugNames.from_protocol(protocol)
    m = pd.DataFrame({"drug": ["prednisone", "Medrol"], "start": [dt.date(2010, 1, 1), dt.date(2010, 2, 1)],
                      "stop": [dt.date(2010, 2, 1), None], "daily_dose_mg": [20.0, 16.0]})
    cut = protocol.index.data_cut
    assert prednisone_equivalent(m, dt.date(2010, 1, 31), protocol, names, cut) == 20.0
    assert prednisone_equivalent(m, dt.date(2010, 2, 1), protocol, names, cut) == 20.0   # 16 mg Medrol
    assert prednisone_equivalent(m, dt.date(2019, 1, 1), protocol, names, cut) == 0.0
