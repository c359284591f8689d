"""Drug eras as OHDSI builds them: exposures of one ingredient joined across gaps of at most ``persistence_days``.

The CDM's ``drug_era`` script (and CIRCE's custom era) pads each exposure's end by the persistence window, merges
padded exposures that overlap, and takes the era's end as the latest real end (padded end minus the window). An
exposure starting on or before the previous end + ``persistence_days`` continues the era. Here an exposure may
be open (``stop`` missing: ongoing at the end of the data), which makes its era open.

>>> import pandas as pd
>>> x = pd.DataFrame({"person": [1, 1, 1], "drug": ["a", "a", "a"],
...                   "start": pd.to_datetime(["2015-01-01", "2015-02-20", "2015-06-01"]),
...                   "stop": pd.to_datetime(["2015-02-01", "2015-03-01", "2015-07-01"]), "reason": [None] * 3})
>>> drug_eras(x, 30)[["start", "stop"]].astype(str).values.tolist()
[['2015-01-01', '2015-03-01'], ['2015-06-01', '2015-07-01']]
"""

from __future__ import annotations

import pandas as pd

OPEN = pd.Timestamp("2262-01-01")


def drug_eras(exposures: pd.DataFrame, persistence_days: int) -> pd.DataFrame:
    """Collapse ``exposures`` (``person, drug, start, stop`` (NaT: open), ``reason``, other columns kept from
    the era's first exposure) into eras, one row each; ``reason`` is that of the exposure that ends the era
    (latest end, then latest start, then the reason first in alphabetical order, as the cohort's course does).
    """
    if exposures.empty:
        return exposures.copy()
    x = exposures.copy()
    x["_end"] = x["stop"].fillna(OPEN)
    x = x.sort_values(["person", "drug", "start", "_end"], kind="mergesort").reset_index(drop=True)
    group = x["person"].astype(str) + "\x00" + x["drug"].astype(str)
    latest = x.groupby(group, sort=False)["_end"].cummax()
    before = latest.groupby(group, sort=False).shift()
    new = before.isna() | (x["start"] > before + pd.Timedelta(days=persistence_days))
    x["_era"] = new.cumsum()
    last = x.assign(_r=x["reason"].fillna("~")).sort_values(["_era", "_end", "start", "_r"],
                                                              ascending=[True, False, False, True], kind="mergesort")
    last = last.drop_duplicates("_era").set_index("_era")
    first = x.drop_duplicates("_era").set_index("_era")
    out = first.copy()
    out["stop"] = last["_end"].where(last["_end"] < OPEN)
    out["reason"] = last["reason"]
    out["n_exposures"] = x.groupby("_era").size()
    return out.drop(columns=["_end"]).reset_index(drop=True)


def era_count(exposures: pd.DataFrame, persistence_days: int) -> int:
    """How many eras ``exposures`` make (for messages and tests)."""
    return int(len(drug_eras(exposures, persistence_days))) if len(exposures) else 0


__all__ = ["OPEN", "drug_eras", "era_count"]
