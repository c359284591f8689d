"""The derived pft table in the database: read, derived and stored in blocks of tests, its summary combined.

:func:`ildstudy.cohort.lungfunction.derive_pft` works on a pandas frame of tests. A registry of 1,000,000 patients
has 13.8 million tests; derived at once they took 7.7 GB beyond the database's own copy. So the pft table is read
in blocks of :data:`BLOCK_ROWS` tests (in the order a whole read gives), each block is derived and appended to one
temporary table, and the blocks' summaries are combined by :func:`combine_derivations`: counts add up, the first
examples of each reason are the first blocks' first, and means and standard deviations of the recorded −
recomputed differences are pooled from each block's count, mean and sum of squared deviations (Chan et al.'s
formula), so they equal the one-pass values up to floating-point summation order. One block (fewer tests than
:data:`BLOCK_ROWS`: every registry up to ~145,000 patients) is exactly the one-pass derivation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ildstudy.cohort import lungfunction
from ildstudy.cohort.lungfunction import (_EXAMPLES, DERIVED_COLUMNS, MEASURES, REASONS, LungFunctionDerivation,
                                          _agreement_rows, _measure_rows, needs_derivation)

#: tests derived at a time (about 0.55 GB of working memory per million tests)
BLOCK_ROWS = 2_000_000
PATIENT_COLUMNS = ("patient_id", "sex", "birth_date", "height_cm", "race_ethnicity")


def derived_sources(con, src, protocol, shared):
    """``src`` with its pft table replaced by the derived one, and the derivation; ``(src, None)`` when the
    protocol needs none (:func:`~ildstudy.cohort.lungfunction.needs_derivation`).

    ``shared`` (the connection's :class:`~ildstudy.cohort.backend.RunTables`) keeps the derived table in the
    database for the other cohorts of the run with the same ``[lung_function]`` (the sensitivity analyses):
    reading, deriving and storing the pft table took ~1.5 s of each build at 100,000 patients. One version only,
    and no pandas copy is kept once the table is stored."""
    if not needs_derivation(protocol):
        return src, None
    key = protocol.lung.model_dump_json(exclude={"zscore_trajectories"})  # what derive_pft reads
    table, derivation = shared.get("derived_pft", key, lambda temp: _derive_and_store(src, protocol, temp))
    return replace(src, pft=table), derivation


def _derive_and_store(src, protocol, temp):
    schema = {**{c: t for c, t in src.pft.schema().items()}, **{c: "float64" for c in DERIVED_COLUMNS}}
    engine = temp.engine
    patients = engine.fetch(src.patients.select(*PATIENT_COLUMNS))
    parts: list[LungFunctionDerivation] = []

    def blocks():
        for pft in engine.fetch_blocks(src.pft, BLOCK_ROWS):
            frame, derivation = lungfunction.derive_pft(pft, patients, protocol.lung)
            del pft
            parts.append(derivation)
            yield _typed(frame, schema)

    table = temp.store_frames(blocks(), schema, "pft_derived")
    return table, combine_derivations(parts)


def _typed(frame: pd.DataFrame, schema: dict) -> pd.DataFrame:
    frame["test_date"] = pd.to_datetime(frame["test_date"]).dt.normalize()  # typed date by the schema
    for c, t in schema.items():
        if t == "float64" or str(t).startswith("float"):
            frame[c] = frame[c].astype("float64")
    return frame[list(schema)]


def combine_derivations(parts: list[LungFunctionDerivation]) -> LungFunctionDerivation:
    """One derivation's summary from its blocks' (in table order); one block is returned as it is."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    measure_order = {m: i for i, m in enumerate(MEASURES)}
    reason_order = {r: i for i, r in enumerate(REASONS)}

    flags = pd.concat([p.flags for p in parts], ignore_index=True)
    flags = flags.groupby(["measure", "reason"], sort=False, as_index=False)["n"].sum()
    flags = flags.iloc[np.lexsort((flags["reason"].map(reason_order), flags["measure"].map(measure_order)))]

    examples = pd.concat([p.examples for p in parts], ignore_index=True)
    order = np.lexsort((np.arange(len(examples)), examples["reason"].map(reason_order).to_numpy(),
                        examples["measure"].map(measure_order).to_numpy()))
    examples = examples.iloc[order].groupby(["measure", "reason"], sort=False).head(_EXAMPLES)

    return replace(first, measures=_measures([p.measures for p in parts]),
                   flags=flags.reset_index(drop=True).astype({"n": "int64"}),
                   examples=examples.reset_index(drop=True),
                   n_hb_uncorrected=sum(p.n_hb_uncorrected for p in parts),
                   agreement=_agreement([p.agreement for p in parts]))


def _pooled(n: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> tuple[int, float | None, float | None]:
    """Count, mean and SD (ddof 1) of the union of groups given each group's count, mean and SD."""
    keep = n > 0
    n, mean, sd = n[keep], mean[keep], np.where(n[keep] > 1, sd[keep], 0.0)
    total = int(n.sum())
    if total == 0:
        return 0, None, None
    grand = float((n * mean).sum() / total)
    m2 = float(((n - 1) * sd ** 2).sum() + (n * (mean - grand) ** 2).sum())
    return total, grand, (float(np.sqrt(m2 / (total - 1))) if total > 1 else None)


def _measures(frames: list[pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for measure, group in pd.concat(frames, ignore_index=True).groupby("measure", sort=False):
        row = {"measure": measure, "equation": group["equation"].iloc[0]}
        for c in ("n_tests", "n_derived", "n_flagged"):
            row[c] = int(group[c].sum())
        if group["n_compared"].isna().all():  # a measure without a recorded % predicted
            row.update(n_compared=None, mean_recorded_minus_derived=None, sd_recorded_minus_derived=None,
                       n_differ_over_5=None)
        else:
            n = group["n_compared"].fillna(0).to_numpy(dtype=np.int64)
            total, mean, sd = _pooled(n, group["mean_recorded_minus_derived"].to_numpy(dtype=float),
                                      group["sd_recorded_minus_derived"].to_numpy(dtype=float))
            row.update(n_compared=total, mean_recorded_minus_derived=mean, sd_recorded_minus_derived=sd,
                       n_differ_over_5=int(group["n_differ_over_5"].fillna(0).sum()))
        rows.append(row)
    return _measure_rows(rows)


def _agreement(frames: list[pd.DataFrame]) -> pd.DataFrame:
    rows = []
    both = pd.concat(frames, ignore_index=True)
    for (measure, year), group in both.groupby(["measure", "year"], sort=False):
        n = group["n_compared"].to_numpy(dtype=np.int64)
        rows.append({"measure": measure, "year": int(year), "n_compared": int(n.sum()),
                     "mean_recorded_minus_derived": float((n * group["mean_recorded_minus_derived"]).sum() / n.sum()),
                     "n_differ_over_5": int(group["n_differ_over_5"].sum())})
    order = {m: i for i, m in enumerate(MEASURES)}
    rows.sort(key=lambda r: (order[r["measure"]], r["year"]))
    return _agreement_rows(rows)
