"""Drug names: generic and brand spellings, any case and white space, mapped to generic names.

Registries record drugs as typed by clinicians: ``Imuran``, ``AZATHIOPRINE``, ``CellCept 500``,
``mycophenolate  mofetil``. :class:`DrugNames` maps every known spelling to one lower-case generic name
(the names the protocol's arms, exclusions and glucocorticoid table use). Spellings that match nothing known
are kept as their normalised text and reported by :func:`unrecognised_drug_problems` as warnings with
counts -- never silently ignored.

Normalisation (:func:`normalise_drug_name`) is deliberately simple so that SQL can do exactly the same:
lower case, every run of ASCII white space replaced by one space, surrounding white space removed. The
cohort applies the same rules inside the database (see :mod:`ildstudy.cohort.source`).

>>> from ildstudy.reference.drugs import DrugNames
>>> names = DrugNames.builtin()
>>> names.generic("  IMURAN "), names.generic("CellCept"), names.generic("Solu-Medrol")
('azathioprine', 'mycophenolate mofetil', 'methylprednisolone')
>>> names.generic("wonder pill") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ildstudy.errors import Problem

#: ASCII white space, the characters SQL's ``[ \\t\\n\\r\\f\\v]`` class matches on every backend.
WHITESPACE = " \t\n\r\f\v"
_WS_RUN = re.compile(f"[{re.escape(WHITESPACE)}]+")

#: Generic names ildstudy knows (lower case). Anything a protocol names is added to these.
GENERIC_NAMES: frozenset[str] = frozenset({
    # arms of the built-in protocol
    "azathioprine", "mycophenolate mofetil", "mycophenolic acid",
    # other steroid-sparing agents
    "cyclophosphamide", "tacrolimus", "cyclosporine", "rituximab", "methotrexate", "ivig",
    "leflunomide", "tofacitinib",
    # glucocorticoids
    "prednisone", "prednisolone", "methylprednisolone", "triamcinolone", "hydrocortisone", "cortisone",
    "dexamethasone", "betamethasone", "budesonide", "deflazacort",
    # other drugs common in myositis / ILD registries (recognised, used by no built-in rule)
    "hydroxychloroquine", "sulfasalazine", "abatacept", "tocilizumab", "belimumab", "baricitinib",
    "upadacitinib", "nintedanib", "pirfenidone", "sirolimus", "plasma exchange", "trimethoprim-sulfamethoxazole",
})

#: Brand names, salts, abbreviations and other spellings -> generic name (keys already normalised).
BRAND_NAMES: Mapping[str, str] = {
    # azathioprine
    "imuran": "azathioprine", "azasan": "azathioprine", "aza": "azathioprine",
    # mycophenolate
    "cellcept": "mycophenolate mofetil", "mmf": "mycophenolate mofetil",
    "mycophenolate": "mycophenolate mofetil", "mycophenolate mofetil hydrochloride": "mycophenolate mofetil",
    "myfortic": "mycophenolic acid", "mycophenolate sodium": "mycophenolic acid",
    "mycophenolic acid sodium": "mycophenolic acid",
    # glucocorticoids
    "deltasone": "prednisone", "rayos": "prednisone", "predone": "prednisone",
    "orapred": "prednisolone", "millipred": "prednisolone", "pediapred": "prednisolone",
    "prednisolone sodium phosphate": "prednisolone", "prednisolone acetate": "prednisolone",
    "medrol": "methylprednisolone", "solu-medrol": "methylprednisolone", "solumedrol": "methylprednisolone",
    "depo-medrol": "methylprednisolone", "methylprednisolone sodium succinate": "methylprednisolone",
    "methylprednisolone acetate": "methylprednisolone", "iv methylprednisolone": "methylprednisolone",
    "decadron": "dexamethasone", "dexamethasone sodium phosphate": "dexamethasone",
    "cortef": "hydrocortisone", "solu-cortef": "hydrocortisone", "hydrocortisone sodium succinate": "hydrocortisone",
    "kenalog": "triamcinolone", "triamcinolone acetonide": "triamcinolone",
    "celestone": "betamethasone", "entocort": "budesonide", "emflaza": "deflazacort",
    "cortisone acetate": "cortisone",
    # other steroid-sparing agents
    "cytoxan": "cyclophosphamide", "neosar": "cyclophosphamide", "cyc": "cyclophosphamide",
    "prograf": "tacrolimus", "envarsus": "tacrolimus", "astagraf": "tacrolimus",
    "neoral": "cyclosporine", "sandimmune": "cyclosporine", "gengraf": "cyclosporine",
    "ciclosporin": "cyclosporine", "cyclosporin": "cyclosporine", "cyclosporine a": "cyclosporine",
    "rituxan": "rituximab", "truxima": "rituximab", "ruxience": "rituximab", "riabni": "rituximab",
    "trexall": "methotrexate", "otrexup": "methotrexate", "rasuvo": "methotrexate", "xatmep": "methotrexate",
    "mtx": "methotrexate",
    "arava": "leflunomide",
    "xeljanz": "tofacitinib",
    "gamunex": "ivig", "gamunex-c": "ivig", "privigen": "ivig", "octagam": "ivig", "gammagard": "ivig",
    "flebogamma": "ivig", "panzyga": "ivig", "iv ig": "ivig", "iv immunoglobulin": "ivig",
    "intravenous immunoglobulin": "ivig", "intravenous immune globulin": "ivig", "immune globulin": "ivig",
    # others
    "plaquenil": "hydroxychloroquine", "azulfidine": "sulfasalazine", "orencia": "abatacept",
    "actemra": "tocilizumab", "benlysta": "belimumab", "olumiant": "baricitinib", "rinvoq": "upadacitinib",
    "ofev": "nintedanib", "esbriet": "pirfenidone", "rapamune": "sirolimus",
    "bactrim": "trimethoprim-sulfamethoxazole", "septra": "trimethoprim-sulfamethoxazole",
}


def normalise_drug_name(name: str | None) -> str | None:
    """Lower case, runs of white space collapsed to one space, surrounding white space removed.

    ``None`` and names that are empty after trimming give ``None``.

    >>> normalise_drug_name("  Mycophenolate \\t MOFETIL ")
    'mycophenolate mofetil'
    """
    if name is None:
        return None
    text = _WS_RUN.sub(" ", str(name)).strip(" ").lower()
    return text or None


@dataclass(frozen=True)
class DrugNames:
    """Known drug spellings and the generic name each one means.

    ``spellings`` maps a normalised spelling to its generic name; every generic name maps to itself.
    ``generics`` is the set of generic names (values of ``spellings``).
    """

    spellings: Mapping[str, str]
    generics: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def builtin(cls, extra_generics: Iterable[str] = (), extra_spellings: Mapping[str, str] | None = None
                ) -> "DrugNames":
        """The built-in table, extended by more generic names and spellings (``spelling -> generic``)."""
        generics = set(GENERIC_NAMES)
        generics.update(n for n in (normalise_drug_name(g) for g in extra_generics) if n)
        spellings: dict[str, str] = {g: g for g in generics}
        spellings.update(BRAND_NAMES)
        for spelling, generic in (extra_spellings or {}).items():
            key, value = normalise_drug_name(spelling), normalise_drug_name(generic)
            if key and value:
                spellings[key] = value
                spellings.setdefault(value, value)
        return cls(spellings, frozenset(spellings.values()))

    @classmethod
    def from_protocol(cls, protocol) -> "DrugNames":
        """The built-in table plus every drug the protocol names and its ``[drug_names]`` spellings."""
        named = [d for arm in protocol.arms for d in arm.drugs]
        named += list(protocol.exclusions.other_agents.drugs) + list(protocol.glucocorticoids)
        return cls.builtin(named, protocol.drug_names)

    def generic(self, name: str | None) -> str | None:
        """The generic name for any spelling, or ``None`` when the spelling is not known."""
        key = normalise_drug_name(name)
        return None if key is None else self.spellings.get(key)


def declared_drug_names(declared: Mapping[str, str], *, override_builtin: bool = False
                        ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A protocol's ``[drug_names]`` (spelling -> generic), normalised and checked against the built-in table.

    Keys and values are normalised with :func:`normalise_drug_name`; a value that is a built-in spelling
    means its generic (``"aza tabs" = "Imuran"`` maps to ``azathioprine``). A value that is not known yet
    declares a new generic name (``"newdrug" = "newdrug"``). A spelling that the built-in table already maps
    to a *different* generic is refused unless ``override_builtin`` is true; mapping it to the same generic is
    harmless and kept.

    Returns
    -------
    spellings : dict
        Normalised spelling -> generic name, for :meth:`DrugNames.builtin` ``extra_spellings``.
    problems : list of (str, str)
        ``(spelling as written, message)`` for each refused entry.

    >>> spellings, problems = declared_drug_names({" Wonder  Pill": "wonderpill", "Imuran": "mercaptopurine"})
    >>> spellings, [key for key, _ in problems]
    ({'wonder pill': 'wonderpill'}, ['Imuran'])
    """
    builtin = DrugNames.builtin()
    spellings: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for raw_key, raw_value in declared.items():
        key, value = normalise_drug_name(raw_key), normalise_drug_name(raw_value)
        if key is None or value is None:
            problems.append((raw_key, "a drug spelling and its generic name must not be empty"))
            continue
        value = builtin.spellings.get(value, value)
        known = builtin.spellings.get(key)
        if known is not None and known != value and not override_builtin:
            problems.append((raw_key, f"'{key}' is a built-in spelling of '{known}'; set "
                                      f"override_builtin_drug_names = true to map it to '{value}' instead"))
            continue
        if key in spellings and spellings[key] != value:
            problems.append((raw_key, f"'{key}' is declared twice after normalisation, as "
                                      f"'{spellings[key]}' and '{value}'"))
            continue
        spellings[key] = value
    return spellings, problems


def unrecognised_drug_problems(counts: Mapping[str, int], table: str, column: str = "drug") -> list[Problem]:
    """One warning per unrecognised normalised spelling, with its row count, most frequent first.

    ``counts`` maps a normalised spelling that :class:`DrugNames` does not know to its number of rows.
    """
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [
        Problem(table, None, column, name,
                f"unrecognised drug name in {n} row{'s' if n != 1 else ''}; "
                "used by no cohort rule (add it to the protocol's [drug_names] if it is a study drug)",
                severity="warning")
        for name, n in items
    ]
