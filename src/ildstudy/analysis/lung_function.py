"""The study's lung-function block: which reference equation gave each measure, and what was derived or flagged.

:func:`lung_function_result` turns the cohort's :class:`~ildstudy.cohort.lungfunction.LungFunctionDerivation`
into :class:`LungFunctionResult` (results.json ``lung_function``, tables ``lung_function_measures`` and
``lung_function_flags``; the report's lung-function section and methods sentence read it).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """

    settings: dict[str, Any]
    equations: dict[str, str]
    measures: pd.DataFrame
    flags: pd.DataFrame
    outcomes: dict[str, str]
    n_hb_uncorrected: int = 0

    @property
    def recomputed(self) -> bool:
        """Whether % predicted / z-scores were recomputed from raw values (not ``as_recorded``)."""
        return self.settings["reference_equation"] != "as_recorded"

    def label(self, measure: str) -> str:
        """The equation of ``measure`` for people: ``GLI Global 2022 (race-neutral)``."""
        return EQUATION_CITATIONS[self.equations[measure]][0]

    def citations(self) -> list[dict[str, str]]:
        """One ``{equation, label, citation}`` per equation used, in measure order."""
        seen = dict.fromkeys(self.equations.values())
        return [{"equation": e, "label": EQUATION_CITATIONS[e][0], "citation": EQUATION_CITATIONS[e][1]}
                for e in seen]

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``lung_function``."""
        return {"settings": plain(self.settings), "equations": dict(self.equations), "citations": self.citations(),
                "outcomes": dict(self.outcomes), "measures": frame_records(self.measures),
                "flags": frame_records(self.flags), "n_hb_uncorrected": int(self.n_hb_uncorrected)}

    def tables(self) -> dict[str, pd.DataFrame]:
        """``lung_function_measures`` and ``lung_function_flags``."""
        return {"lung_function_measures": self.measures, "lung_function_flags": self.flags}


def lung_function_result(derivation, protocol) -> LungFunctionResult | None:
    """The result of the cohort's derivation (None when the protocol derived nothing)."""
    from ildstudy.variables import outcome_spec

    if derivation is None:
        return None
    lung = protocol.lung
    recomputed = lung.needs_raw
    equations = {"fvc": lung.reference_equation, "fev1": lung.reference_equation,
                 "dlco": lung.dlco_equation if recomputed else "as_recorded"}
    if not recomputed:
        equations.pop("fev1")
    units = {o.name: outcome_spec(o.name).unit for o in protocol.outcomes if outcome_spec(o.name).source == "pft"}
    return LungFunctionResult(lung.model_dump(mode="json"), equations, derivation.measures, derivation.flags,
                              units, derivation.n_hb_uncorrected)
