"""OMOP concept sets: the settings of the OMOP input route, and their resolution against a CDM's vocabulary.

A :class:`ConceptSet` lists standard ``concept_ids`` and/or vocabulary codes (``"LOINC:19872-1"``,
``"SNOMED:396230008"``). Against a CDM whose ``concept`` and ``concept_ancestor`` tables are present, the codes are
looked up in ``concept`` and every descendant is added through ``concept_ancestor`` (as ATLAS does with "include
descendants"); without the vocabulary only the listed ids count. :class:`OmopSettings` holds every concept set of
the route; its defaults are below and a protocol's ``[omop]`` table overrides them (``docs/inputs.md``).

Where each default id comes from (checked with the OHDSI sources named; ids marked *unverified* were not found
there and are given by code only, so they resolve only through a CDM's own ``concept`` table):

- RxNorm ingredients: OHDSI/Vocabulary-v5.0 ``HCPCS/procedure_drug.sql`` (``relationship_to_concept``: azathioprine
  19014878, mycophenolate mofetil 19003999, mycophenolic acid 19012565, prednisone 1551099, prednisolone 1550557,
  methylprednisolone 1506270, triamcinolone 903963, hydrocortisone 975125, dexamethasone 1518254, betamethasone
  920458, cyclophosphamide 1310317, tacrolimus 950637, cyclosporine 19010482, rituximab 1314273, methotrexate
  1305058, immune globulin 19117912); cortisone 1507705 from National-Clinical-Cohort-Collaborative/CS-Rural-Health
  (steroid ingredient list); leflunomide 1101898 and tofacitinib 42904205 appear unnamed in public DMARD ancestor
  lists only (csDMARD / JAK) -- check them in Athena.
- Units: mg 8576, mL 8587 and percent 8554 from the same HCPCS file; L, cm, g/dL by UCUM code.
- LOINC: FVC measured/predicted 19872-1 and FVC volume 19870-5 (Automate-Medical/pft-ig, spirometry/FVC.fsh --
  19870-5 is the volume, not % predicted); DLCO 19911-7 (pft-ig, DLCO.fsh) and DLCO/Predicted 98130-8 (OMOP concept
  1617299, named in an OMOP LOINC concept list); FEV1 20150-9 (pft-ig, FEV1.fsh). Their other OMOP ids: *unverified*.
- SNOMED: dermatomyositis 396230008, polymyositis 31384009, myositis 26889001, interstitial lung disease 233703007,
  never smoked 266919005, ex-smoker 8517006, smoker 77176002 (codes; OMOP ids *unverified*).
- OMOP's own: gender 8532 FEMALE / 8507 MALE; race 8527 White, 8516 Black or African American, 8515 Asian;
  ethnicity 38003563 Hispanic or Latino; values 9191 Positive / 9189 Negative, 4188539 Yes / 4188540 No.
- Antisynthetase syndrome, IMNM, CADM, overlap myositis, the myositis antibodies, the adverse-event categories and
  the adverse-event attributes have no default standard concept here: the defaults are local concepts of
  vocabulary ``ildstudy`` (ids above 2,000,000,000, OHDSI's range for local concepts) that ``ildstudy synth
  --format omop`` writes; map a centre's own concepts in ``[omop]``.

>>> s = OmopSettings()
>>> s.drugs["azathioprine"].concept_ids, s.persistence_days
((19014878,), 30)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

LOCAL = 2_000_000_000  #: OHDSI reserves concept ids above 2 billion for local concepts


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConceptSet(_Frozen):
    """Standard concept ids and/or ``"VOCABULARY:code"`` codes; descendants added when the vocabulary is there."""

    concept_ids: tuple[StrictInt, ...] = ()
    codes: tuple[StrictStr, ...] = ()
    include_descendants: StrictBool = True

    @field_validator("codes")
    @classmethod
    def _vocabulary_code(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for c in v:
            if ":" not in c or not c.split(":", 1)[0] or not c.split(":", 1)[1]:
                raise ValueError(f"code {c!r} must be written VOCABULARY:code, e.g. \"LOINC:19872-1\"")
        return v


def _ids(*ids: int) -> ConceptSet:
    return ConceptSet(concept_ids=ids)


def _codes(*codes: str, ids: tuple[int, ...] = ()) -> ConceptSet:
    return ConceptSet(concept_ids=ids, codes=codes)


def _local(code: str) -> ConceptSet:
    return ConceptSet(codes=(f"ildstudy:{code}",))


#: Generic name (as in the protocol) -> RxNorm ingredient concept id (sources in the module docstring).
INGREDIENTS: dict[str, int] = {
    "azathioprine": 19014878, "mycophenolate mofetil": 19003999, "mycophenolic acid": 19012565,
    "prednisone": 1551099, "prednisolone": 1550557, "methylprednisolone": 1506270, "triamcinolone": 903963,
    "hydrocortisone": 975125, "cortisone": 1507705, "dexamethasone": 1518254, "betamethasone": 920458,
    "cyclophosphamide": 1310317, "tacrolimus": 950637, "cyclosporine": 19010482, "rituximab": 1314273,
    "methotrexate": 1305058, "ivig": 19117912, "leflunomide": 1101898, "tofacitinib": 42904205,
}

#: Canonical pft / patients column -> (LOINC code, OMOP id or None when unverified, canonical unit code).
MEASUREMENTS: dict[str, tuple[str, int | None]] = {
    "fvc_pct_pred": ("LOINC:19872-1", None), "dlco_pct_pred": ("LOINC:98130-8", 1617299),
    "fvc_l": ("LOINC:19870-5", None), "fev1_l": ("LOINC:20150-9", None), "dlco": ("LOINC:19911-7", None),
    "hemoglobin_g_dl": ("LOINC:718-7", 3000963), "height_cm": ("LOINC:8302-2", 3036277),
}

#: Each measurement column's accepted units: "UCUM:code" -> factor to the canonical unit (dlco keeps its unit).
UNITS: dict[str, dict[str, float]] = {
    "fvc_pct_pred": {"UCUM:%": 1.0}, "dlco_pct_pred": {"UCUM:%": 1.0},
    "fvc_l": {"UCUM:L": 1.0, "UCUM:mL": 0.001}, "fev1_l": {"UCUM:L": 1.0, "UCUM:mL": 0.001},
    "hemoglobin_g_dl": {"UCUM:g/dL": 1.0, "UCUM:g/L": 0.1}, "height_cm": {"UCUM:cm": 1.0, "UCUM:m": 100.0},
    "dlco": {"UCUM:mL/min/mm[Hg]": 1.0, "UCUM:mmol/min/kPa": 1.0},
}
#: UCUM code -> canonical ``dlco_unit``
DLCO_UNITS = {"UCUM:mL/min/mm[Hg]": "mL/min/mmHg", "UCUM:mmol/min/kPa": "mmol/min/kPa"}
#: verified OMOP ids of unit codes (others resolve through ``concept``)
UNIT_IDS = {"UCUM:%": 8554, "UCUM:mL": 8587, "UCUM:mg": 8576}


def _default_drugs() -> dict[str, ConceptSet]:
    return {name: _ids(cid) for name, cid in INGREDIENTS.items()}


def _default_diagnoses() -> dict[str, ConceptSet]:
    # most specific first: a person with several myositis conditions gets the first listed
    return {"ASyS": _local("ASyS"), "IMNM": _local("IMNM"), "CADM": _local("CADM"), "overlap": _local("overlap"),
            "DM": _codes("SNOMED:396230008"), "PM": _codes("SNOMED:31384009"), "other": _codes("SNOMED:26889001")}


def _default_measurements() -> dict[str, ConceptSet]:
    return {col: _codes(code, ids=(cid,) if cid else ()) for col, (code, cid) in MEASUREMENTS.items()}


def _default_antibodies() -> dict[str, ConceptSet]:
    from ildstudy.data.schema import ANTIBODIES

    return {a: _local(f"antibody {a}") for a in ANTIBODIES}


def _default_adverse_events() -> dict[str, ConceptSet]:
    from ildstudy.data.schema import AE_CATEGORIES

    return {c: _local(f"adverse event {c}") for c in AE_CATEGORIES}


class OmopSettings(_Frozen):
    """Every concept set of the OMOP route (the ``[omop]`` table of a protocol); see the module docstring."""

    #: Generic drug name -> concept set; arm drugs, other agents and glucocorticoids are looked up here by name.
    drugs: dict[StrictStr, ConceptSet] = Field(default_factory=_default_drugs)
    #: Canonical diagnosis -> condition concept set, in precedence order (a person gets the first that matches).
    diagnoses: dict[StrictStr, ConceptSet] = Field(default_factory=_default_diagnoses)
    ild: ConceptSet = _codes("SNOMED:233703007")
    smoking: dict[Literal["never", "former", "current"], ConceptSet] = Field(default_factory=lambda: _DEFAULTS[
        "smoking"]())
    measurements: dict[StrictStr, ConceptSet] = Field(default_factory=_default_measurements)
    antibodies: dict[StrictStr, ConceptSet] = Field(default_factory=_default_antibodies)
    adverse_events: dict[StrictStr, ConceptSet] = Field(default_factory=_default_adverse_events)
    #: Observations about an adverse event (``observation_event_id`` = its ``condition_occurrence_id``).
    ae_suspected_drug: ConceptSet = _local("adverse event suspected drug")
    ae_serious: ConceptSet = _local("adverse event serious")
    ae_led_to_discontinuation: ConceptSet = _local("adverse event led to discontinuation")
    positive: tuple[StrictInt, ...] = (9191,)
    negative: tuple[StrictInt, ...] = (9189,)
    yes: tuple[StrictInt, ...] = (4188539,)
    no: tuple[StrictInt, ...] = (4188540,)
    #: OHDSI drug eras: exposures of one ingredient less than this many days apart are one era (arm drugs and
    #: other agents; glucocorticoid exposures keep their rows and doses).
    persistence_days: StrictInt = Field(default=30, ge=0)
    #: Drugs whose exposures keep their own rows and daily doses (no eras): the glucocorticoids.
    keep_exposures: tuple[StrictStr, ...] = ("prednisone", "prednisolone", "methylprednisolone", "triamcinolone",
                                             "hydrocortisone", "cortisone", "dexamethasone", "betamethasone")
    #: ``condition_status_source_value`` marking an ILD condition whose diagnosis date is not known.
    unknown_onset: StrictStr = "onset date unknown"

    @field_validator("drugs", "diagnoses", "smoking", "measurements", "antibodies", "adverse_events")
    @classmethod
    def _over_defaults(cls, v: dict, info) -> dict:
        """A table given in ``[omop]`` changes or adds entries; the others keep their defaults (an entry with no
        ids or codes switches a default off)."""
        if info.field_name == "measurements":
            unknown = sorted(set(v) - set(MEASUREMENTS))
            if unknown:
                raise ValueError(f"{', '.join(unknown)}: not a measurement ildstudy reads ({', '.join(MEASUREMENTS)})")
        return {**_DEFAULTS[info.field_name](), **v}


_DEFAULTS = {"drugs": _default_drugs, "diagnoses": _default_diagnoses, "measurements": _default_measurements,
             "antibodies": _default_antibodies, "adverse_events": _default_adverse_events,
             "smoking": lambda: {"never": _codes("SNOMED:266919005"), "former": _codes("SNOMED:8517006"),
                                 "current": _codes("SNOMED:77176002")}}


class Vocabulary:
    """A CDM's ``concept`` / ``concept_ancestor`` tables (or their absence), for resolving concept sets.

    ``concepts``: DataFrame ``concept_id, vocabulary_id, concept_code, concept_name``; ``ancestors``: DataFrame
    ``ancestor_concept_id, descendant_concept_id``; both ``None`` when the CDM has no vocabulary.
    """

    def __init__(self, concepts=None, ancestors=None):
        self.present = concepts is not None
        self.by_code: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.descendants: dict[int, set[int]] = {}
        if concepts is not None:
            for cid, voc, code, name in concepts[["concept_id", "vocabulary_id", "concept_code",
                                                  "concept_name"]].itertuples(index=False):
                self.by_code[f"{voc}:{code}"] = int(cid)
                self.names[int(cid)] = str(name)
        if ancestors is not None:
            for a, d in ancestors[["ancestor_concept_id", "descendant_concept_id"]].itertuples(index=False):
                self.descendants.setdefault(int(a), set()).add(int(d))

    def resolve(self, cs: ConceptSet) -> set[int]:
        """The concept ids of ``cs``: its ids, its codes found in ``concept``, and (if asked) their descendants."""
        ids = set(cs.concept_ids) | {self.by_code[c] for c in cs.codes if c in self.by_code}
        if cs.include_descendants:
            for cid in list(ids):
                ids |= self.descendants.get(cid, set())
        return ids

    def unit_id(self, code: str) -> int | None:
        return self.by_code.get(code, UNIT_IDS.get(code))


__all__ = ["DLCO_UNITS", "INGREDIENTS", "LOCAL", "MEASUREMENTS", "UNITS", "UNIT_IDS", "ConceptSet", "OmopSettings",
           "Vocabulary"]
