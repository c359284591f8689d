"""The study's lung-function block: which reference equation gave each measure, and what was derived or flagged.

:func:`lung_function_result` turns the cohort's :class:`~ildstudy.cohort.lungfunction.LungFunctionDerivation`
into :class:`LungFunctionResult` (results.json ``lung_function``, tables ``lung_function_measures``,
``lung_function_flags`` and ``lung_function_agreement``; the report's lung-function section and methods sentence
read it). With ``[lung_function] zscore_trajectories`` the study adds the FVC and DLCO z-score trajectories
(:mod:`ildstudy.analysis.zscore_trajectories`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ildstudy._json import frame_records, plain

#: equation -> (label, citation); the citations are those of the equation modules' docstrings
#: (src/ildstudy/reference/lungfunction/*.py).
EQUATION_CITATIONS = {
    "as_recorded": ("as recorded by each centre", "the centres' own laboratory equations (not recomputed)"),
    "gli_global_2022": ("GLI Global 2022 (race-neutral)",
                        "Bowerman C et al. Am J Respir Crit Care Med 2023;207:768-74. doi:10.1164/rccm.202205-0963OC"),
    "gli_2012": ("GLI-2012 (multi-ethnic)",
                 "Quanjer PH et al. Eur Respir J 2012;40:1324-43. doi:10.1183/09031936.00080312"),
    "nhanes3": ("NHANES III", "Hankinson JL et al. Am J Respir Crit Care Med 1999;159:179-87. "
                              "doi:10.1164/ajrccm.159.1.9712108"),
    "gli_tlco_2017": ("GLI-2017 TLCO", "Stanojevic S et al. Eur Respir J 2017;50:1700010. "
                                       "doi:10.1183/13993003.00010-2017 (corrected 2020;56:1750010)"),
}


@dataclass(frozen=True)
class LungFunctionResult:
    """How lung function was expressed in this study.

    Attributes
    ----------
    settings : the ``[lung_function]`` table as run.
    equations : measure (fvc, fev1, dlco) -> equation name.
    measures : DataFrame[measure, equation, n_tests, n_derived, n_flagged, n_compared,
        mean_recorded_minus_derived] (registry-wide counts of PFTs; see :mod:`ildstudy.cohort.lungfunction`).
    flags : DataFrame[measure, reason, n].
    outcomes : outcome name -> its unit (``% predicted``, ``z-score``, ``mL``) for the protocol's PFT outcomes.
    n_hb_uncorrected : DLCO tests derived without haemoglobin although Hb correction was asked for.
    check_equations : measure -> the equation the recorded % predicted were checked against (empty unless
        ``as_recorded`` with a ``check_equation``; z-scores and FEV1 % predicted then come from it).
    agreement : DataFrame[measure, year, n_compared, mean_recorded_minus_derived, n_differ_over_5].
    zscore_trajectories : the z-score trajectories (``[lung_function] zscore_trajectories``), or None.
    """

    settings: dict[str, Any]
    equations: dict[str, str]
    measures: pd.DataFrame
    flags: pd.DataFrame
    outcomes: dict[str, str]
    n_hb_uncorrected: int = 0
    check_equations: dict[str, str] = field(default_factory=dict)
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)
    zscore_trajectories: Any = None

    @property
    def recomputed(self) -> bool:
        """Whether % predicted / z-scores were recomputed from raw values (not ``as_recorded``)."""
        return self.settings["reference_equation"] != "as_recorded"

    @property
    def checked(self) -> bool:
        """Whether the recorded % predicted were checked against an equation (``check_equation``)."""
        return bool(self.check_equations)

    def label(self, measure: str, check: bool = False) -> str:
        """The equation of ``measure`` for people: ``GLI Global 2022 (race-neutral)`` (``check``: the equation
        it was checked against)."""
        return EQUATION_CITATIONS[(self.check_equations if check else self.equations)[measure]][0]

    def citations(self) -> list[dict[str, str]]:
        """One ``{equation, label, citation}`` per equation used (or checked against), in measure order."""
        seen = dict.fromkeys([*self.equations.values(), *self.check_equations.values()])
        return [{"equation": e, "label": EQUATION_CITATIONS[e][0], "citation": EQUATION_CITATIONS[e][1]}
                for e in seen]

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``lung_function``."""
        traj = self.zscore_trajectories
        return {"settings": plain(self.settings), "equations": dict(self.equations),
                "check_equations": dict(self.check_equations), "citations": self.citations(),
                "outcomes": dict(self.outcomes), "measures": frame_records(self.measures),
                "flags": frame_records(self.flags), "n_hb_uncorrected": int(self.n_hb_uncorrected),
                "agreement": frame_records(self.agreement),
                "zscore_trajectories": None if traj is None else traj.to_dict()}

    def tables(self) -> dict[str, pd.DataFrame]:
        """``lung_function_measures``, ``lung_function_flags``, ``lung_function_agreement`` (and the z-score
        trajectories' tables)."""
        out = {"lung_function_measures": self.measures, "lung_function_flags": self.flags,
               "lung_function_agreement": self.agreement}
        if self.zscore_trajectories is not None:
            out.update(self.zscore_trajectories.tables())
        return out


def lung_function_result(derivation, protocol, zscore_trajectories=None) -> LungFunctionResult | None:
    """The result of the cohort's derivation (None when the protocol derived nothing), with the z-score
    trajectories when the study fitted them."""
    from ildstudy.variables import outcome_spec

    if derivation is None:
        return None
    lung = protocol.lung

    def per_measure(spirometry: str, dlco: str) -> dict[str, str]:
        return {"fvc": spirometry, "fev1": spirometry, "fev1_fvc": spirometry, "dlco": dlco}

    # as recorded, only FVC and DLCO have a (recorded) % predicted
    equations = (per_measure(lung.reference_equation, lung.dlco_equation) if lung.needs_raw
                 else {"fvc": "as_recorded", "dlco": "as_recorded"})
    checks = per_measure(lung.check_equation, lung.dlco_equation) if lung.checks else {}
    units = {o.name: outcome_spec(o.name).unit for o in protocol.outcomes if outcome_spec(o.name).source == "pft"}
    return LungFunctionResult(lung.model_dump(mode="json"), equations, derivation.measures, derivation.flags,
                              units, derivation.n_hb_uncorrected, checks, derivation.agreement,
                              zscore_trajectories)
