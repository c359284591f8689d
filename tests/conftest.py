"""Shared pytest fixtures.

- ``pg_url``: a PostgreSQL URL from ``ILDSTUDY_PG_URL``. Unset: the test is skipped with the reason, or fails
  when ``ILDSTUDY_REQUIRE_SERVICES=1`` (CI sets it, so a missing server can never pass silently). Start a
  local server with ``export ILDSTUDY_PG_URL="$(.ci/start-postgres.sh)"``.
- ``pg_schema``: a fresh, empty PostgreSQL schema for one test (dropped afterwards); its URL selects it.
- ``registry_builder``: build small typed registries by hand, patient by patient.
- ``spark``: one local Spark session for the run (pyspark + Java 17); skipped or failed like ``pg_url``.

Add fixtures for other services in the same style (see :func:`require_service`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest

from ildstudy.data.registry import Registry
from ildstudy.data.schema import TABLES

PG_ENV = "ILDSTUDY_PG_URL"
REQUIRE_ENV = "ILDSTUDY_REQUIRE_SERVICES"


def services_required() -> bool:
    """True when missing services must fail the run instead of skipping (CI)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def require_service(reason: str) -> None:
    """Skip the current test with ``reason``, or fail with it under ``ILDSTUDY_REQUIRE_SERVICES=1``."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: required services must be present)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of a reachable PostgreSQL database (``ILDSTUDY_PG_URL``)."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        require_service(f"PostgreSQL not available: set {PG_ENV}=postgresql://user:password@host:port/dbname "
                        "(e.g. export ILDSTUDY_PG_URL=\"$(.ci/start-postgres.sh)\")")
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as con:
            con.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        require_service(f"PostgreSQL not available at {PG_ENV}: {type(exc).__name__}: {exc}".strip())
    return url


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A URL whose connections use a new empty schema (``search_path``), dropped after the test."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA "{schema}" CASCADE')


class RegistryBuilder:
    """Build a typed :class:`~ildstudy.data.Registry` row by row (dates as ``YYYY-MM-DD`` strings).

    >>> b = RegistryBuilder()
    >>> b.patient("p1").med("p1", "Imuran", "2015-01-01").pft("p1", "2015-01-01", 60, 45)  # doctest: +SKIP
    >>> registry = b.build()                                                               # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {t.name: [] for t in TABLES}

    def patient(self, pid: str, *, sex: str = "F", birth_date: str = "1965-06-15", diagnosis: str | None = "DM",
                ild: bool | None = True, smoking_status: str | None = "never", **extra) -> "RegistryBuilder":
        self.rows["patients"].append(dict(patient_id=pid, sex=sex, birth_date=birth_date, diagnosis=diagnosis,
                                          ild=ild, smoking_status=smoking_status, **extra))
        return self

    def med(self, pid: str, drug: str, start: str, stop: str | None = None, dose: float | None = None,
            reason: str | None = None) -> "RegistryBuilder":
        self.rows["medications"].append(dict(patient_id=pid, drug=drug, start_date=start, stop_date=stop,
                                             daily_dose_mg=dose, stop_reason=reason))
        return self

    def pft(self, pid: str, date: str, fvc: float | None, dlco: float | None = None) -> "RegistryBuilder":
        self.rows["pft"].append(dict(patient_id=pid, test_date=date, fvc_pct_pred=fvc, dlco_pct_pred=dlco))
        return self

    def antibody(self, pid: str, antibody: str, result: str = "positive") -> "RegistryBuilder":
        self.rows["antibodies"].append(dict(patient_id=pid, antibody=antibody, result=result))
        return self

    def ae(self, pid: str, date: str, category: str = "cytopenia", drug: str | None = None,
           serious: bool | None = False, led_to_discontinuation: bool | None = False) -> "RegistryBuilder":
        self.rows["adverse_events"].append(dict(patient_id=pid, event_date=date, category=category, drug=drug,
                                                serious=serious, led_to_discontinuation=led_to_discontinuation))
        return self

    def build(self) -> Registry:
        tables = {}
        for spec in TABLES:
            rows = self.rows[spec.name]
            cols = {}
            for col in spec.columns:
                values = [r.get(col.name) for r in rows]
                if col.kind == "date":
                    cols[col.name] = pd.to_datetime(pd.Series(values, dtype=object), format="%Y-%m-%d")
                elif col.kind == "bool":
                    cols[col.name] = pd.Series(values, dtype="boolean")
                elif col.kind == "number":
                    cols[col.name] = pd.Series([float("nan") if v is None else v for v in values], dtype="float64")
                else:
                    cols[col.name] = pd.Series(values, dtype=object)
            tables[spec.name] = pd.DataFrame(cols, index=pd.RangeIndex(len(rows)))
        return Registry(tables)


@pytest.fixture
def registry_builder() -> RegistryBuilder:
    """A fresh :class:`RegistryBuilder`."""
    return RegistryBuilder()


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (``local[2]``) for the whole test run, stopped at the end.

    Needs the ``pyspark`` package (the ``test`` extra) and Java 17 (``.ci/run`` installs
    openjdk-17-jre-headless); skipped without them, failing instead under ``ILDSTUDY_REQUIRE_SERVICES=1``.
    """
    import shutil

    try:
        from pyspark.sql import SparkSession
    except ImportError:
        require_service("Spark not available: pip install 'ildstudy[spark]'")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        require_service("Spark not available: no Java (apt-get install openjdk-17-jre-headless)")
    try:
        session = (SparkSession.builder.master("local[2]").appName("ildstudy-tests")
                   .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        require_service(f"Spark not available: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
