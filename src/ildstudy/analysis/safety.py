"""Safety on the study cohort: adverse events per 100 person-years, and discontinuation with competing risks.

Built from the cohort's ``patients`` and ``adverse_events`` tables (see :class:`ildstudy.cohort.Cohort`) and the
numerics of :mod:`ildstudy.analysis.rates` and :mod:`ildstudy.analysis.competing_risks`:

* **Person-time adverse events** (:func:`person_time_frame`). Time at risk is the *as-treated* time on the arm drug,
  ``treatment_months`` — the time to the stop, switch or add-on that ends treatment (the time the discontinuation
  analysis uses), else to the end of follow-up (maximum months or data cut) — in years (months / 12). Events are the
  cohort's adverse events with ``months <= treatment_months`` (events in the grace days after a stop fall outside the
  time at risk and are not counted). Patients with zero time on treatment (stopped on the index day) have no
  person-time and are left out; their number is reported (``excluded_zero_time``).
* **Discontinuation with competing risks** (:func:`discontinuation_causes`). Time is ``treatment_months``; cause 1 =
  the arm drug was stopped for an adverse event (``stop_reason == "adverse_event"``), cause 2 = stopped for any other
  reason or switched to the other arm's drug (a switch is a discontinuation event, not a censoring), 0 = censored
  (still on the drug at the end of follow-up, or an add-on of another agent ended as-treated follow-up while the
  arm drug continued).

With more than two arms every non-reference arm is compared with the reference arm on the two arms' patients
(one :class:`~ildstudy.analysis.rates.RateResult` / :class:`~ildstudy.analysis.competing_risks.CompetingRisksResult`
per comparison).

>>> from ildstudy.analysis.safety import study_safety                  # doctest: +SKIP
>>> res = study_safety(cohort.patients, cohort.adverse_events, ["AZA", "MMF"], "MMF")  # doctest: +SKIP
>>> res.rates_table()                                                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ildstudy._json import frame_records
from ildstudy.analysis.competing_risks import CompetingRisksResult, competing_risks
from ildstudy.analysis.discontinuation import AE_REASON, REPORT_MONTHS
from ildstudy.analysis.rates import RateResult, incidence_rates
from ildstudy.errors import ModelError

#: Cause codes of the competing-risks analysis and their labels.
CAUSE_LABELS = {1: "adverse_event", 2: "other_stop_or_switch"}
PERSON_TIME_RULE = ("as-treated time on the arm drug (treatment_months / 12 years); adverse events with "
                    "months <= treatment_months; patients with zero time on treatment left out")
CAUSE_RULE = ("time = treatment_months; cause 1 = stopped for an adverse event; cause 2 = stopped for another "
              "reason or switched to the other arm's drug; 0 = censored (on the drug at the end of follow-up, "
              "or follow-up ended by an add-on)")


def person_time_frame(patients: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Per patient ``patient_id, arm, n_events, person_years`` (the input of
    :func:`~ildstudy.analysis.rates.incidence_rates`) and the number of patients left out for zero time.

    Parameters
    ----------
    patients : DataFrame[patient_id, arm, treatment_months]
    events : DataFrame[patient_id, months]
        One row per adverse event (the cohort's ``adverse_events``).
    """
    t = pd.to_numeric(patients["treatment_months"], errors="coerce").astype(float)
    on = events.merge(pd.DataFrame({"patient_id": patients["patient_id"], "_end": t.to_numpy()}), on="patient_id")
    on = on[pd.to_numeric(on["months"], errors="coerce") <= on["_end"]]
    counts = on.groupby("patient_id").size()
    frame = pd.DataFrame({"patient_id": patients["patient_id"].to_numpy(),
                          "arm": patients["arm"].astype(str).to_numpy(),
                          "n_events": patients["patient_id"].map(counts).fillna(0).astype(int).to_numpy(),
                          "person_years": (t / 12.0).to_numpy()})
    keep = frame["person_years"] > 0
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def discontinuation_causes(patients: pd.DataFrame) -> pd.DataFrame:
    """Per patient ``patient_id, arm, time, cause`` for :func:`~ildstudy.analysis.competing_risks.competing_risks`
    (rules in the module docstring).

    Parameters
    ----------
    patients : DataFrame[patient_id, arm, treatment_months, discontinued, treatment_end, stop_reason]
    """
    ended = patients["discontinued"].fillna(False).astype(bool).to_numpy()
    end = patients["treatment_end"].astype(object).to_numpy()
    reason = patients["stop_reason"].astype(object).to_numpy()
    stop = ended & (end == "stop")
    cause = np.where(stop & (reason == AE_REASON), 1, np.where(stop | (ended & (end == "switch")), 2, 0))
    return pd.DataFrame({"patient_id": patients["patient_id"].to_numpy(), "arm": patients["arm"].astype(str).to_numpy(),
                         "time": pd.to_numeric(patients["treatment_months"], errors="coerce").astype(float).to_numpy(),
                         "cause": cause.astype(int)})


@dataclass(frozen=True)
class SafetyResult:
    """Person-time adverse events and competing-risks discontinuation of a study.

    Attributes
    ----------
    arms : tuple of str
        Protocol order (reference last).
    reference_arm : str
    person_time : tuple of RateResult
        One per non-reference arm (that arm / reference).
    excluded_zero_time : int
        Cohort patients with no time on treatment, left out of the rates.
    competing : tuple of CompetingRisksResult
        One per non-reference arm versus the reference.
    report_months : tuple of float
        Months at which cumulative incidence is tabulated.
    """

    arms: tuple[str, ...]
    reference_arm: str
    person_time: tuple[RateResult, ...]
    excluded_zero_time: int
    competing: tuple[CompetingRisksResult, ...]
    report_months: tuple[float, ...] = tuple(float(m) for m in REPORT_MONTHS)

    # ---- person-time -------------------------------------------------------------------------------------
    def rates_table(self) -> pd.DataFrame:
        """``arm, n, events, person_years, rate_per_100py, ci_low, ci_high`` per arm (protocol order)."""
        rows = {}
        for res in self.person_time:
            for a in res.by_arm:
                rows.setdefault(a.arm, {"arm": a.arm, "n": a.n, "events": a.events, "person_years": a.person_years,
                                        "rate_per_100py": a.rate, "ci_low": a.ci_low, "ci_high": a.ci_high})
        return pd.DataFrame([rows[a] for a in self.arms if a in rows],
                            columns=["arm", "n", "events", "person_years", "rate_per_100py", "ci_low", "ci_high"])

    def rate_ratios_table(self) -> pd.DataFrame:
        """``contrast, method, estimate, ci_low, ci_high, p`` per comparison × method (exact, Poisson GLM,
        negative binomial; a model's row has empty numbers when it is not estimable)."""
        rows = []
        for res in self.person_time:
            contrast = f"{res.arms[0]} / {res.reference_arm}"
            rows.append({"contrast": contrast, "method": "exact", "estimate": res.exact.estimate,
                         "ci_low": res.exact.ci_low, "ci_high": res.exact.ci_high, "p": res.exact.p})
            for method, model in (("poisson_glm", res.poisson), ("negative_binomial", res.negative_binomial)):
                rows.append({"contrast": contrast, "method": method,
                             **({"estimate": model.rate_ratio, "ci_low": model.ci_low, "ci_high": model.ci_high,
                                 "p": model.p} if model is not None else
                                {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan})})
        return pd.DataFrame(rows, columns=["contrast", "method", "estimate", "ci_low", "ci_high", "p"]).astype(
            {c: float for c in ("estimate", "ci_low", "ci_high", "p")})

    def person_time_dict(self) -> dict[str, Any]:
        """results.json's ``adverse_events.person_time``."""
        return {"definition": PERSON_TIME_RULE, "per": 100, "excluded_zero_time": self.excluded_zero_time,
                "by_arm": frame_records(self.rates_table()),
                "comparisons": [r.to_dict() for r in self.person_time]}

    # ---- competing risks ---------------------------------------------------------------------------------
    def cumulative_incidence(self, arm: str):
        """The arm's :class:`~ildstudy.analysis.competing_risks.CumulativeIncidence` (from the first comparison
        that has the arm)."""
        for res in self.competing:
            if arm in res.cumulative_incidence:
                return res.cumulative_incidence[arm]
        raise KeyError(arm)

    def cumulative_incidence_table(self) -> pd.DataFrame:
        """``arm, cause, cause_label, month, estimate, std_err, ci_low, ci_high`` at the report months."""
        frames = []
        for a in self.arms:
            ci = self.cumulative_incidence(a)
            for k, label in CAUSE_LABELS.items():
                if k in ci.causes:
                    at = ci.at(self.report_months, k)
                else:  # no event of this cause anywhere: incidence 0
                    at = pd.DataFrame({"time": self.report_months, "estimate": 0.0, "std_err": 0.0,
                                       "ci_low": np.nan, "ci_high": np.nan})
                frames.append(at.rename(columns={"time": "month"}).assign(arm=a, cause=k, cause_label=label))
        cols = ["arm", "cause", "cause_label", "month", "estimate", "std_err", "ci_low", "ci_high"]
        return pd.concat(frames, ignore_index=True)[cols]

    def hazard_ratios_table(self) -> pd.DataFrame:
        """``contrast, cause, cause_label, model, estimate, ci_low, ci_high, p, n_events`` (cause-specific Cox and
        Fine–Gray, per comparison and cause; empty numbers when not estimable)."""
        rows = []
        for res in self.competing:
            contrast = f"{res.arms[0]} / {res.reference_arm}"
            for k, label in CAUSE_LABELS.items():
                cs, fg = res.cause_specific.get(k), res.fine_gray.get(k)
                for model, fit, p in (("cause_specific_cox", cs, None if cs is None else cs.p),
                                      ("fine_gray", fg, None if fg is None else fg.robust_p)):
                    rows.append({"contrast": contrast, "cause": k, "cause_label": label, "model": model,
                                 "estimate": np.nan if fit is None else fit.hazard_ratio,
                                 "ci_low": np.nan if fit is None else fit.ci_low,
                                 "ci_high": np.nan if fit is None else fit.ci_high,
                                 "p": np.nan if p is None else p,
                                 "n_events": pd.NA if fit is None else int(fit.n_events)})
        out = pd.DataFrame(rows, columns=["contrast", "cause", "cause_label", "model", "estimate", "ci_low",
                                          "ci_high", "p", "n_events"])
        return out.astype({"n_events": "Int64", **{c: float for c in ("estimate", "ci_low", "ci_high", "p")}})

    def competing_risks_dict(self) -> dict[str, Any]:
        """results.json's ``discontinuation.competing_risks``."""
        comps = []
        for res in self.competing:
            comps.append({"arm": res.arms[0], "reference_arm": res.reference_arm,
                          "cause_specific_hr": {str(k): None if res.cause_specific.get(k) is None
                                                else res.cause_specific[k].to_dict() for k in CAUSE_LABELS},
                          "fine_gray_shr": {str(k): None if res.fine_gray.get(k) is None
                                            else res.fine_gray[k].to_dict() for k in CAUSE_LABELS}})
        return {"definition": CAUSE_RULE, "causes": {str(k): v for k, v in CAUSE_LABELS.items()},
                "variance": "infinitesimal jackknife (survfit)",
                "cumulative_incidence": frame_records(self.cumulative_incidence_table()),
                "comparisons": comps}

    def tables(self) -> dict[str, pd.DataFrame]:
        """``adverse_event_rates``, ``adverse_event_rate_ratios``, ``discontinuation_cumulative_incidence``,
        ``discontinuation_cause_hazard_ratios``."""
        return {"adverse_event_rates": self.rates_table(),
                "adverse_event_rate_ratios": self.rate_ratios_table(),
                "discontinuation_cumulative_incidence": self.cumulative_incidence_table(),
                "discontinuation_cause_hazard_ratios": self.hazard_ratios_table()}


def study_safety(patients: pd.DataFrame, events: pd.DataFrame, arms: list[str], reference_arm: str,
                 *, conf_level: float = 0.95) -> SafetyResult:
    """Person-time adverse-event rates and competing-risks discontinuation of a cohort.

    Parameters
    ----------
    patients : DataFrame
        The cohort's patients (``patient_id, arm, treatment_months, discontinued, treatment_end, stop_reason``).
    events : DataFrame[patient_id, months, ...]
        The cohort's adverse events.
    arms : list of str
        Protocol order; ``reference_arm`` among them.
    reference_arm : str

    Returns
    -------
    SafetyResult

    Raises
    ------
    ModelError
        The rates or competing-risks models cannot be computed (e.g. an arm without time on treatment).
    """
    pt, excluded = person_time_frame(patients, events)
    causes = discontinuation_causes(patients)
    rates, comp = [], []
    for a in (x for x in arms if x != reference_arm):
        pair = [a, reference_arm]
        try:
            rates.append(incidence_rates(pt[pt["arm"].isin(pair)], pair, reference_arm, conf_level=conf_level))
            comp.append(competing_risks(causes[causes["arm"].isin(pair)], pair, reference_arm,
                                        cause_labels=CAUSE_LABELS, conf_level=conf_level))
        except ValueError as exc:  # e.g. an arm with no time on treatment
            raise ModelError(f"safety analysis {a} vs {reference_arm}: {exc}") from None
    return SafetyResult(tuple(arms), reference_arm, tuple(rates), excluded, tuple(comp))
