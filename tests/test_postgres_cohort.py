"""PostgreSQL: loading typed tables, and the same cohort as on DuckDB from the same Ibis code.

Needs ``ILDSTUDY_PG_URL`` (``export ILDSTUDY_PG_URL="$(.ci/start-postgres.sh)"``); skipped otherwise, failing
instead under ``ILDSTUDY_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest

from ildstudy.cohort import build_cohort
from ildstudy.data.database import write_registry_to
from ildstudy.data.postgres import write_registry_postgres
from ildstudy.errors import IldStudyError
from test_cohort_steps import build_follow_up_registry, build_step_registry, itt_protocol
from test_cohort_tables import build_tables_registry
from test_glucocorticoids import _taper_registry

pytestmark = pytest.mark.postgres

TABLES = ("attrition", "patients", "outcomes", "adverse_events", "excluded")
# Sums of doses may be added in another order by another database: allow for the last bits.
FLOAT_RTOL = 1e-12


def assert_same_cohort(a, b) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=False, rtol=FLOAT_RTOL,
                                      obj=name)
    assert [str(p) for p in a.warnings] == [str(p) for p in b.warnings]


@pytest.fixture
def hand_registry(registry_builder):
    b = registry_builder
    build_step_registry(b)
    build_follow_up_registry(b)
    build_tables_registry(b)
    _taper_registry(b)
    b.med("p1", "prednisone", "2016-06-15", "2016-08-01", None)      # no dose on day 548 (month 18): a warning
    b.med("a1", "Omeprazole", "2015-01-01")                          # an unrecognised name: a warning
    return b.build()


def test_write_registry_postgres_types_and_values(hand_registry, pg_schema):
    shown = write_registry_postgres(hand_registry, pg_schema)
    assert "ildstudy:***@" in shown or "***" in shown or "@" not in shown
    with psycopg.connect(pg_schema) as con:
        types = dict(con.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()").fetchall())
        assert types["medications.start_date"] == "date"
        assert types["patients.ild"] == "boolean"
        assert types["pft.fvc_pct_pred"] == "double precision"
        assert types["medications.drug"] == "text"
        for name, frame in hand_registry.tables.items():
            assert con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] == len(frame)
        # NULLs stay NULL, text keeps its white space, floats keep every bit
        assert con.execute("SELECT count(*) FROM patients WHERE ild IS NULL").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM medications WHERE drug = ' Imuran '").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM medications WHERE stop_date IS NULL").fetchone()[0] == int(
            hand_registry["medications"]["stop_date"].isna().sum())
        assert con.execute("SELECT daily_dose_mg FROM medications WHERE drug = 'Decadron'").fetchone()[0] == 0.75


def test_load_is_repeatable_and_replaces_tables(hand_registry, pg_schema):
    write_registry_to(hand_registry, pg_schema)
    write_registry_to(hand_registry, pg_schema)
    with psycopg.connect(pg_schema) as con:
        assert con.execute("SELECT count(*) FROM patients").fetchone()[0] == len(hand_registry["patients"])


def test_same_cohort_on_duckdb_and_postgres(hand_registry, pg_schema):
    write_registry_postgres(hand_registry, pg_schema)
    on_duckdb = build_cohort(hand_registry)
    on_postgres = build_cohort(pg_schema)
    assert on_postgres.backend.startswith("postgresql://")
    assert_same_cohort(on_duckdb, on_postgres)
    drug_and_dose = [w for w in on_duckdb.warnings if w.file != "pft"]  # pft: the lung-function check (no raw values)
    assert len(on_duckdb.patients) > 20 and len(drug_and_dose) == 2
    assert [str(w) for w in on_postgres.warnings] == [str(w) for w in on_duckdb.warnings]
    # and with the other follow-up rule
    assert_same_cohort(build_cohort(hand_registry, itt_protocol()), build_cohort(pg_schema, itt_protocol()))


def test_temporary_tables_do_not_outlive_the_run(hand_registry, pg_schema):
    import ibis

    write_registry_postgres(hand_registry, pg_schema)
    con = ibis.connect(pg_schema)
    try:
        build_cohort(con)                       # a caller's connection: the session stays open
        with con.raw_sql("SELECT count(*) FROM pg_class WHERE relname LIKE '\\_ildstudy\\_%'") as cur:
            assert cur.fetchone()[0] == 0
    finally:
        con.disconnect()


def test_unreachable_server_is_a_user_error(hand_registry):
    with pytest.raises(IldStudyError, match=r"postgresql://u:\*\*\*@127\.0\.0\.1:1/db: cannot connect"):
        write_registry_postgres(hand_registry, "postgresql://u:secret@127.0.0.1:1/db")
