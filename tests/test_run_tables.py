"""The temporary tables a run's cohorts share (issue 13: the sensitivity analyses rebuild their cohorts on the
same connection): computed once per key, recomputed and the old table dropped when the key changes, dropped when
the connection closes, and a cohort built on a shared connection equals one built alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ildstudy.cohort import build_cohort, connect
from ildstudy.cohort import lungfunction
from ildstudy.data.load import registry_from_frames
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol
from ildstudy.synth import generate_registry
from protocol_helpers import with_lung


@pytest.fixture(scope="module")
def registry():
    frames, _ = generate_registry(300, np.random.default_rng(5), load_protocol("huapaya2019"))
    return registry_from_frames(frames)


def _temp_tables(conn) -> set[str]:
    return {t for t in conn.backend.list_tables() if t.startswith("_ildstudy_")}


def test_shared_tables_are_made_once_per_key_and_dropped_on_close(registry, monkeypatch):
    calls = []
    derive = lungfunction.derive_pft
    monkeypatch.setattr(lungfunction, "derive_pft", lambda *a, **k: calls.append(1) or derive(*a, **k))
    p = load_protocol("huapaya2019")  # derives: check_equation = gli_global_2022
    other = parse_protocol(with_lung(builtin_protocol_text("huapaya2019"),
                                     'reference_equation = "gli_global_2022"\n'))
    conn = connect(registry)
    try:
        first = build_cohort(conn, p)
        tables = _temp_tables(conn)
        assert any("pft_derived" in t for t in tables) and any("medications" in t for t in tables)
        again = build_cohort(conn, p)
        assert len(calls) == 1 and _temp_tables(conn) == tables  # reused, nothing new left behind
        pd.testing.assert_frame_equal(first.outcomes, again.outcomes)
        build_cohort(conn, other)
        assert len(calls) == 2
        derived = [t for t in _temp_tables(conn) if "pft_derived" in t]
        assert len(derived) == 1 and derived[0] not in tables  # the old version was dropped
        backend = conn.backend
    finally:
        conn.close()
    assert calls == [1, 1]
    alone = build_cohort(registry, p)  # its own connection, closed after the build
    pd.testing.assert_frame_equal(alone.outcomes, first.outcomes)
    pd.testing.assert_frame_equal(alone.patients, first.patients)
    with pytest.raises(Exception):  # the run's connection (an in-memory DuckDB) is closed with its tables
        backend.list_tables()


def test_index_and_follow_up_are_shared_by_sql(registry):
    """The index dates are the same SQL for every sensitivity cohort, so they are stored once; a variant that
    changes how follow-up ends (intention to treat) gets its own follow-up table, and its cohort is the one it
    gets alone."""
    p = load_protocol("huapaya2019")
    itt = p.sensitivity_protocol("intention_to_treat")
    conn = connect(registry)
    try:
        build_cohort(conn, p)
        index = {t for t in _temp_tables(conn) if t.startswith("_ildstudy_index_")}
        follow = {t for t in _temp_tables(conn) if t.startswith("_ildstudy_follow_up_")}
        assert len(index) == 1 and len(follow) == 1
        shared = build_cohort(conn, itt)
        assert {t for t in _temp_tables(conn) if t.startswith("_ildstudy_index_")} == index
        now = {t for t in _temp_tables(conn) if t.startswith("_ildstudy_follow_up_")}
        assert len(now) == 1 and now != follow  # recomputed for the new setting, the old one dropped
    finally:
        conn.close()
    alone = build_cohort(registry, itt)
    for name in ("patients", "outcomes", "adverse_events", "attrition", "excluded"):
        pd.testing.assert_frame_equal(getattr(shared, name), getattr(alone, name))


@pytest.mark.parametrize("presorted", [True, False])
def test_outcome_row_order_is_lexsorts(presorted, monkeypatch):
    """``_order`` gives ``np.lexsort((value, months, key))`` whether the rows arrive ordered within each key (the
    fast path: no full sort) or not (the full sort, also with NaN values), ties included."""
    from ildstudy.cohort.build import _order

    rng = np.random.default_rng(3)
    n = 5000
    key = rng.integers(0, 300, n)
    months = rng.choice([0.0, 3.0, 6.0, 12.0], n)
    value = rng.choice([50.0, 60.0, 70.0], n)
    if presorted:  # ordered as the database returns them: by a key order of its own, then months and value
        first = rng.permutation(300)[key]
        idx = np.lexsort((value, months, first))
        key, months, value = key[idx], months[idx], value[idx]
    else:
        value[rng.random(n) < 0.02] = np.nan
    want = np.lexsort((value, months, key))
    if presorted:
        monkeypatch.setattr(np, "lexsort", lambda *a: pytest.fail("the presorted rows took the full sort"))
    got = _order(key, months, value)
    np.testing.assert_array_equal(key[got], key[want])
    np.testing.assert_array_equal(months[got], months[want])
    np.testing.assert_array_equal(value[got], value[want])
