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
