"""How a clinician might have typed each value: the "realistic mess" of the synthetic registry.

Each canonical value has a tuple of spellings with weights; :func:`spell` draws one spelling per row,
vectorised. Every drug spelling here is one the built-in drug-name table
(:mod:`ildstudy.reference.drugs`) maps back to its generic name, and every category spelling is one
the loader accepts (``ildstudy.data.schema``), so the mess never changes what a rule decides.
"""

from __future__ import annotations

import numpy as np

#: generic drug name -> (spellings, weights); the first spelling is the plain generic name.
DRUG_SPELLINGS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "azathioprine": (("azathioprine", "Azathioprine", "AZATHIOPRINE", " AZATHIOPRINE ", "Imuran", "IMURAN",
                      "Azasan", "azathioprine "), (4, 4, 2, 1, 4, 1, 1, 1)),
    "mycophenolate mofetil": (("mycophenolate mofetil", "Mycophenolate Mofetil", "MYCOPHENOLATE  MOFETIL",
                               "CellCept", "cellcept", "MMF", "Mycophenolate"), (4, 3, 1, 4, 1, 2, 2)),
    "mycophenolic acid": (("mycophenolic acid", "Myfortic", "MYFORTIC", "Mycophenolate sodium"), (2, 4, 1, 1)),
    "prednisone": (("prednisone", "Prednisone", "PREDNISONE", "Deltasone", " prednisone"), (5, 5, 2, 1, 1)),
    "prednisolone": (("prednisolone", "Prednisolone", "Orapred", "PREDNISOLONE"), (4, 4, 1, 1)),
    "methylprednisolone": (("methylprednisolone", "Medrol", "methylPREDNISolone", "Methylprednisolone"),
                           (3, 4, 1, 3)),
    "methylprednisolone iv": (("Solu-Medrol", "solumedrol", "IV methylprednisolone"), (3, 1, 2)),
    "methotrexate": (("methotrexate", "Methotrexate", "MTX", "Trexall"), (3, 3, 1, 1)),
    "tacrolimus": (("tacrolimus", "Tacrolimus", "Prograf", " TACROLIMUS"), (3, 3, 2, 1)),
    "cyclosporine": (("cyclosporine", "Cyclosporine", "Neoral", "ciclosporin"), (3, 2, 1, 1)),
    "rituximab": (("rituximab", "Rituximab", "Rituxan", "RITUXIMAB"), (3, 3, 2, 1)),
    "cyclophosphamide": (("cyclophosphamide", "Cyclophosphamide", "Cytoxan", "CYCLOPHOSPHAMIDE"), (3, 3, 1, 1)),
    "ivig": (("IVIG", "ivig", "IV immunoglobulin", "Privigen"), (3, 1, 1, 1)),
    "leflunomide": (("leflunomide", "Arava"), (2, 1)),
    "tofacitinib": (("tofacitinib", "Xeljanz"), (2, 1)),
    "hydroxychloroquine": (("hydroxychloroquine", "Plaquenil", "HYDROXYCHLOROQUINE"), (3, 2, 1)),
    "trimethoprim-sulfamethoxazole": (("Bactrim", "trimethoprim-sulfamethoxazole", "Septra"), (3, 2, 1)),
    # not in the drug-name table on purpose: the loader/cohort report them as unrecognised (a warning)
    "omeprazole": (("omeprazole", "Omeprazole"), (1, 1)),
    "calcium carbonate / vitamin D": (("calcium carbonate / vitamin D", "Calcium + Vit D"), (1, 1)),
}

#: Generic names the synthetic registry writes, with the generic each spelling must map back to
#: (``None``: deliberately unknown to the drug-name table).
GENERIC_OF: dict[str, str | None] = {
    "methylprednisolone iv": "methylprednisolone", "omeprazole": None, "calcium carbonate / vitamin D": None,
}

SEX = {"F": (("F", "F", "F", "female", "Female"), None), "M": (("M", "M", "M", "male", "Male"), None)}
DIAGNOSIS = {
    "DM": (("DM", "DM", "DM", "dermatomyositis", "Dermatomyositis"), None),
    "PM": (("PM", "PM", "PM", "polymyositis"), None),
    "ASyS": (("ASyS", "ASyS", "ASyS", "antisynthetase syndrome", "ASYS"), None),
    "IMNM": (("IMNM",), None), "CADM": (("CADM", "CADM", "cadm"), None),
    "overlap": (("overlap", "Overlap"), None), "other": (("other", "Other"), None),
}
SMOKING = {"never": (("never", "never", "Never", "non-smoker"), None),
           "former": (("former", "former", "Former", "ex-smoker", "ex"), None),
           "current": (("current", "current", "Current"), None)}
RESULT = {"positive": (("positive", "positive", "Positive", "pos", "POS", "+"), None),
          "negative": (("negative", "negative", "Negative", "neg", "NEG", "-"), None)}
ANTIBODY = {"Jo-1": (("Jo-1", "Jo-1", "JO-1", "jo1", "Jo1"), None), "PL-7": (("PL-7", "PL-7", "PL7"), None),
            "PL-12": (("PL-12", "PL-12", "PL12"), None), "TIF1-γ": (("TIF1-γ", "TIF1-gamma", "TIF1g"), None),
            "Mi-2": (("Mi-2", "Mi2"), None), "PM-Scl": (("PM-Scl", "PMScl"), None)}


def spelling_table(canonical: tuple[str, ...], table: dict) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Vocabulary of all spellings, and per canonical value its first code and cumulative weights.

    Returns ``(vocab, offsets, cumweights)`` where spellings of ``canonical[i]`` are
    ``vocab[offsets[i]:offsets[i+1]]`` and ``cumweights`` is the row-wise cumulative weight (padded).
    """
    vocab: list[str] = []
    offsets = [0]
    width = max(len(_entry(table, c)[0]) for c in canonical)
    cum = np.ones((len(canonical), width))
    for i, c in enumerate(canonical):
        names, weights = _entry(table, c)
        w = np.ones(len(names)) if weights is None else np.asarray(weights, dtype=float)
        cum[i, : len(names)] = np.cumsum(w) / w.sum()
        vocab.extend(names)
        offsets.append(len(vocab))
    return tuple(vocab), np.asarray(offsets), cum


def _entry(table: dict, canonical: str) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    if canonical in table:
        return table[canonical]
    return (canonical,), None


def spell(codes: np.ndarray, canonical: tuple[str, ...], table: dict, rng: np.random.Generator,
          plain: float = 0.0) -> tuple[np.ndarray, tuple[str, ...]]:
    """One spelling per row for canonical codes (``-1`` stays missing).

    ``plain`` is the extra probability of writing the first (plain) spelling. Returns codes into the
    returned vocabulary.
    """
    vocab, offsets, cum = spelling_table(canonical, table)
    codes = np.asarray(codes)
    ok = codes >= 0
    safe = np.where(ok, codes, 0)
    u = rng.random(len(codes))
    u = np.where(rng.random(len(codes)) < plain, 0.0, u)
    # row i of `cum` lies in (i, i + 1] once i is added: one sorted array, one searchsorted
    width = cum.shape[1]
    flat = (cum + np.arange(len(cum))[:, None]).ravel()
    within = np.searchsorted(flat, safe + u, side="right") - safe * width
    within = np.minimum(within, offsets[safe + 1] - offsets[safe] - 1)
    out = np.where(ok, offsets[safe] + within, -1).astype(np.int32)
    return out, vocab
