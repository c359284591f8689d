"""OMOP CDM v5.4 as an input: concept sets (:mod:`.concepts`), drug eras (:mod:`.eras`), the reader (:mod:`.reader`).

>>> from ildstudy.data.omop import load_omop                          # doctest: +SKIP
>>> registry = load_omop("cdm.duckdb", protocol=load_protocol("huapaya2019"))   # doctest: +SKIP
"""

from __future__ import annotations

from ildstudy.data.omop.concepts import ConceptSet, OmopSettings
from ildstudy.errors import DataError, Problem


def settings_for(protocol=None) -> OmopSettings:
    """A protocol's ``[omop]`` settings (the defaults without one), its glucocorticoids keeping their exposures."""
    settings = getattr(protocol, "omop", None) or OmopSettings()
    if protocol is None:
        return settings
    keep = tuple(dict.fromkeys((*settings.keep_exposures, *protocol.glucocorticoids)))
    return settings.model_copy(update={"keep_exposures": keep})


def _missing_drug_sets(protocol, settings: OmopSettings) -> list[Problem]:
    if protocol is None:
        return []
    named = [*(d for a in protocol.arms for d in a.drugs), *protocol.exclusions.other_agents.drugs,
             *protocol.glucocorticoids]
    return [Problem("omop.drugs", None, name, None, "names a drug of the protocol that has no concept set: add "
                    f"[omop.drugs.\"{name}\"] concept_ids = [...] to the protocol")
            for name in dict.fromkeys(named) if name not in settings.drugs]


def check_omop(url: str, schema: str | None = None, protocol=None):
    """Read the CDM with ``protocol``'s ``[omop]`` settings (or the defaults) and validate the tables it gives
    across rows; return the registry and every problem, each naming the CDM table, row and column."""
    from ildstudy.data.omop.origins import relocate
    from ildstudy.data.omop.reader import read_omop
    from ildstudy.data.validate import validate_registry

    settings = settings_for(protocol)
    registry, problems = read_omop(url, schema, settings)
    return registry, _missing_drug_sets(protocol, settings) + problems + relocate(validate_registry(registry),
                                                                                   registry)


def load_omop(url: str, schema: str | None = None, protocol=None):
    """:func:`check_omop`, raising :class:`~ildstudy.errors.DataError` with every error; warnings kept."""
    from ildstudy.data.registry import Registry

    registry, problems = check_omop(url, schema, protocol)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise DataError(errors)
    return Registry(registry.tables, registry.files, tuple(p for p in problems if p.severity != "error"))


__all__ = ["ConceptSet", "OmopSettings", "check_omop", "load_omop", "settings_for"]
