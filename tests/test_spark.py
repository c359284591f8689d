"""Spark: the same cohort and the same study results as on DuckDB, from the same Ibis code.

The Spark tests need pyspark and Java 17 (the ``spark`` fixture); they are skipped without them and fail
instead under ``ILDSTUDY_REQUIRE_SERVICES=1`` (CI). The URL parsing, engine lookup and Parquet writing
tests run everywhere.
"""

from __future__ import annotations

import math

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ildstudy.cohort import build_cohort
from ildstudy.cohort.backend import ENGINES, SCHEMES, engine_for_url
from ildstudy.cohort.backends import DuckDB, PostgreSQL
from ildstudy.cohort.spark import Spark, mask_spark, parse_spark_url
from ildstudy.data import load_registry
from ildstudy.data.database import load_into
from ildstudy.data.parquet import write_parquet_tables
from ildstudy.errors import DataError, IldStudyError, OutputError

TABLES = ("attrition", "patients", "outcomes", "adverse_events", "excluded")
FLOAT_RTOL = 1e-9  # sums of doses may be added in another order by another engine


def assert_same_cohort(a, b) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=False, rtol=FLOAT_RTOL,
                                      obj=name)
    assert [str(p) for p in a.warnings] == [str(p) for p in b.warnings]


def assert_close(a, b, path="") -> None:
    """Equal JSON-like documents: exact for everything but floats, floats to 1e-9 relative."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


# -- everywhere: URLs and the engine lookup -----------------------------------------------------------

def test_urls_find_their_engine_by_lookup():
    assert engine_for_url("spark://local[2]?tables=/x") is Spark
    assert engine_for_url("sc://db.example:15002") is Spark
    assert engine_for_url("postgresql://u:p@h/db") is PostgreSQL
    assert engine_for_url("host=db.example dbname=registry") is PostgreSQL
    assert engine_for_url("study.duckdb") is DuckDB and engine_for_url("duckdb:///abs/x.store") is DuckDB
    assert set(ENGINES) == {"duckdb", "postgres", "pyspark"} and SCHEMES["sc"] is Spark
    with pytest.raises(IldStudyError, match=r"mysql://u:\*\*\*@h/db: unknown kind of database URL"):
        engine_for_url("mysql://u:secret@h/db")


def test_spark_urls_parse():
    assert parse_spark_url("spark://local[2]?tables=/data/reg&spark.driver.memory=4g") == (
        "local[2]", False, {"tables": "/data/reg", "spark.driver.memory": "4g"})
    assert parse_spark_url("spark://local")[0] == "local[*]"
    assert parse_spark_url("spark://db.example:7077")[:2] == ("spark://db.example:7077", False)
    assert parse_spark_url("sc://db.example:15002/;token=abc")[:2] == ("sc://db.example:15002/;token=abc", True)
    assert "abc" not in mask_spark("sc://db.example:15002/;token=abc")
    with pytest.raises(IldStudyError, match="give a master"):
        parse_spark_url("spark://")


def test_unknown_spark_parameter_and_missing_folder_are_user_errors(tmp_path):
    with pytest.raises(IldStudyError, match="unknown parameter"):
        build_cohort("spark://local[2]?table=/x")
    with pytest.raises(IldStudyError, match="no such folder"):
        build_cohort(f"spark://local[2]?tables={tmp_path / 'nope'}")
    with pytest.raises(DataError, match="no patients.parquet"):
        build_cohort(f"spark://local[2]?tables={tmp_path}")


def test_load_writes_typed_parquet_for_spark(tmp_path, registry_builder):
    b = registry_builder
    b.patient("p1", ild=None).med("p1", "Imuran", "2015-01-01", None, 50.0).pft("p1", "2015-01-02", 61.5, None)
    registry = b.build()
    loaded = load_into(registry, f"spark://local[2]?tables={tmp_path / 'lake'}")
    assert loaded.rows == {name: len(frame) for name, frame in registry.tables.items()}
    meds = pq.read_table(tmp_path / "lake" / "medications.parquet")
    assert str(meds.schema.field("start_date").type) == "date32[day]"
    assert str(meds.schema.field("daily_dose_mg").type) == "double"
    assert meds.column("stop_date").to_pylist() == [None]
    patients = pq.read_table(tmp_path / "lake" / "patients.parquet")
    assert str(patients.schema.field("ild").type) == "bool" and patients.column("ild").to_pylist() == [None]
    with pytest.raises(OutputError, match=r"\?tables=FOLDER"):
        load_into(registry, "spark://local[2]")


# -- with Spark ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo-sized synthetic registry (seed 2019), loaded, and written as typed Parquet."""
    from ildstudy.synth import write_registry

    raw = tmp_path_factory.mktemp("raw") / "registry"
    write_registry(raw, n_patients=None, seed=2019, fmt="parquet")
    registry = load_registry(raw)
    lake = tmp_path_factory.mktemp("lake")
    write_parquet_tables(registry, lake)
    return registry, lake


@pytest.mark.spark
@pytest.mark.slow
def test_demo_study_is_the_same_on_spark_and_duckdb(spark, demo):
    from ildstudy.analysis.serialize import results_document
    from ildstudy.analysis.study import analyse_cohort
    from ildstudy.protocol import load_protocol

    registry, lake = demo
    on_duckdb = build_cohort(registry)
    on_spark = build_cohort(f"spark://local[2]?tables={lake}")  # a new session on the fixture's context
    assert on_spark.backend == f"spark://local[2]?tables={lake}"
    assert_same_cohort(on_duckdb, on_spark)
    assert on_duckdb.arm_counts == on_spark.arm_counts and sum(on_spark.arm_counts.values()) > 50
    # the Parquet views were dropped again; the fixture's session never saw them
    assert not [t for t in spark.catalog.listTables() if t.name.startswith(("_ildstudy", "patients"))]

    protocol = load_protocol("huapaya2019")
    docs = [results_document(analyse_cohort(c, protocol, data_hash="same")) for c in (on_duckdb, on_spark)]
    # lung_function: the built-in protocol checks every PFT against GLI Global 2022 (derivation read from Spark,
    # recomputed, stored back) and fits the z-score trajectories
    for section in ("arms", "attrition", "table1", "outcomes", "adverse_events", "discontinuation",
                    "progression", "lung_function"):
        assert section in docs[0], section
        assert_close(docs[0][section], docs[1][section], section)
    assert docs[1]["lung_function"]["measures"][0]["n_derived"] > 1000
    assert docs[1]["lung_function"]["zscore_trajectories"]["outcomes"]["fvc_zscore"]["available"]


@pytest.mark.spark
def test_hand_registry_on_a_callers_spark_session(spark, registry_builder, tmp_path):
    """A caller's Ibis PySpark backend: same cohort as DuckDB, temporary views dropped, session left open."""
    import ibis

    from test_cohort_steps import build_step_registry

    build_step_registry(registry_builder)
    registry = registry_builder.build()
    write_parquet_tables(registry, tmp_path)
    session = spark.newSession()
    for name in registry.tables:
        session.read.parquet(str(tmp_path / f"{name}.parquet")).createOrReplaceTempView(name)
    con = ibis.pyspark.connect(session)
    on_spark = build_cohort(con)
    assert_same_cohort(build_cohort(registry), on_spark)
    assert on_spark.backend == "spark"
    left = sorted(t.name for t in session.catalog.listTables())
    assert left == sorted(registry.tables)  # only the caller's own views: no _ildstudy_* left behind
    assert session.sql("SELECT 1 AS x").collect()[0].x == 1  # still open
