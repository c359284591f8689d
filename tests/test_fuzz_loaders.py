"""Property-based fuzzing of the registry loaders and the validator.

Valid CSV, XLSX and Parquet registries (tests/malformed/base.py) are mutated at random: bytes flipped,
inserted or cut off, cells replaced by random text or values of another type, columns dropped, headers
shuffled or doubled. Whatever the damage, ``read_registry``/``validate_registry`` must return clean
:class:`~ildstudy.errors.Problem` objects (never raise) and ``ildstudy validate`` must exit 0 or 2 --
never 1 (an internal error) -- and exit 2 exactly when an error was found.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ildstudy.cli import run
from ildstudy.data import load_registry, read_registry
from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy.data.validate import validate_registry
from ildstudy.errors import DataError, Problem
from malformed.base import HEADERS, TABLES, csv_text, table_rows, write_base, write_table

# An exception swallowed inside a reader's callback (printed to the user's terminal) is a failure too.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

# A quick, repeatable run by default (~25 examples per test); ILDSTUDY_FUZZ_EXAMPLES=500 fuzzes for real,
# with fresh random examples each time.
EXAMPLES = int(os.environ.get("ILDSTUDY_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="ILDSTUDY_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DTYPES = {"id": "object", "text": "object", "category": "object", "date": "datetime64[ns]", "bool": "boolean",
          "number": "float64"}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz-bases")
    return {fmt: write_base(root / fmt, fmt) for fmt in ("csv", "xlsx", "parquet")}


@contextlib.contextmanager
def copy_of(base: Path):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "registry"
        shutil.copytree(base, folder)
        yield folder


def check_clean(folder: Path) -> None:
    """The contract every mutated registry must meet."""
    registry, problems = read_registry(folder)
    problems = problems + validate_registry(registry)
    for p in problems:
        assert isinstance(p, Problem)
        assert p.severity in ("error", "warning")
        assert p.row is None or (isinstance(p.row, int) and p.row >= 1)
        assert isinstance(str(p), str)
    errors = [p for p in problems if p.severity == "error"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(["validate", str(folder)])
    assert "internal error" not in err.getvalue() and "Traceback" not in err.getvalue(), err.getvalue()
    assert code == (2 if errors else 0), (code, errors, err.getvalue())
    if errors:
        with pytest.raises(DataError):
            load_registry(folder)
        return
    loaded = load_registry(folder)
    for name, frame in loaded.tables.items():
        spec = TABLES_BY_NAME[name]
        assert list(frame.columns) == list(spec.column_names)
        for col in spec.columns:
            assert str(frame[col.name].dtype) == DTYPES[col.kind], (name, col.name, frame[col.name].dtype)


def mutate_bytes(data: bytes, flips, insert: bytes, cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in flips:
        if buf:
            buf[pos % len(buf)] = value
    if insert and buf:
        at = flips[0][0] % len(buf) if flips else len(buf) // 2
        buf[at:at] = insert
    if cut is not None and buf:
        del buf[cut % len(buf):]
    return bytes(buf)


tables = st.sampled_from(TABLES)
byte_damage = st.tuples(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    st.binary(max_size=16),
    st.none() | st.integers(0, 10**6),
)
any_text = st.text(max_size=24)
cell_values = st.one_of(
    any_text, st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.none(), st.sampled_from(["", "NA", "2019-13-01", "03/04/2019", "1e999", "-0", "TRUE", "Jo1", "  F ",
                                "2099-01-01", "0001-01-01", "9999-12-31", "75,5", '"', "\r\n", "=1+1"]),
)


@FUZZ
@given(table=tables, damage=byte_damage)
def test_csv_byte_damage(bases, table, damage):
    with copy_of(bases["csv"]) as folder:
        path = folder / f"{table}.csv"
        path.write_bytes(mutate_bytes(path.read_bytes(), *damage))
        check_clean(folder)


@FUZZ
@given(table=tables, data=st.data(), raw=st.booleans())
def test_csv_cells_replaced_by_random_text(bases, table, data, raw):
    rows = table_rows(table)
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(rows) - 1), st.integers(0, len(rows[0]) - 1),
                                         st.one_of(any_text, cell_values.map(lambda v: "" if v is None else str(v)))),
                               min_size=1, max_size=4))
    with copy_of(bases["csv"]) as folder:
        for r, c, value in edits:
            rows[r][c] = value
        if raw:  # pasted in without CSV quoting: commas, quotes and line breaks break the row structure
            text = "\n".join(",".join(r) for r in rows) + "\n"
        else:
            text = csv_text(rows)
        (folder / f"{table}.csv").write_text(text, encoding="utf-8")
        check_clean(folder)


@FUZZ
@given(table=tables, data=st.data())
def test_csv_columns_dropped_shuffled_doubled(bases, table, data):
    rows = table_rows(table)
    n = len(rows[0])
    keep = data.draw(st.lists(st.integers(0, n - 1), min_size=0, max_size=n + 2), label="columns kept")
    header = data.draw(st.permutations(rows[0]), label="header")  # names shuffled over the data
    shuffle_header = data.draw(st.booleans(), label="shuffle header")
    with copy_of(bases["csv"]) as folder:
        new = [[(header if shuffle_header else rows[0])[i] for i in keep]] + [[r[i] for i in keep] for r in rows[1:]]
        (folder / f"{table}.csv").write_text(csv_text(new), encoding="utf-8")
        check_clean(folder)


@FUZZ
@given(table=tables, data=st.data())
def test_xlsx_cells_of_any_type(bases, table, data):
    rows = table_rows(table)
    xlsx_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=24)
    xlsx_value = st.one_of(
        xlsx_text, st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
        st.none(), st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(9999, 1, 1)),
        st.dates(min_value=dt.date(1900, 3, 1)), st.times(),
    )
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(rows) - 1), st.integers(0, len(rows[0]) + 1),
                                         xlsx_value), min_size=1, max_size=5))
    with copy_of(bases["xlsx"]) as folder:
        for r, c, value in edits:
            while c >= len(rows[r]):
                rows[r].append(None)
            rows[r][c] = value
        write_table(folder, table, rows, "xlsx")
        check_clean(folder)


@FUZZ
@given(table=tables, damage=byte_damage, fmt=st.sampled_from(["xlsx", "parquet"]))
def test_binary_files_byte_damage(bases, table, damage, fmt):
    with copy_of(bases[fmt]) as folder:
        path = folder / f"{table}.{fmt}"
        path.write_bytes(mutate_bytes(path.read_bytes(), *damage))
        check_clean(folder)


def arrow_column(kind: str, n: int, data) -> "object":
    import pyarrow as pa

    values = {
        "int64": lambda: pa.array(data.draw(st.lists(st.integers(-2**63, 2**63 - 1) | st.none(), min_size=n,
                                                     max_size=n)),
                                  pa.int64()),
        "float64": lambda: pa.array(data.draw(st.lists(st.floats() | st.none(), min_size=n, max_size=n)), pa.float64()),
        "string": lambda: pa.array(data.draw(st.lists(any_text | st.none(), min_size=n, max_size=n)), pa.string()),
        "large_string": lambda: pa.array(data.draw(st.lists(any_text, min_size=n, max_size=n)), pa.large_string()),
        "bool": lambda: pa.array(data.draw(st.lists(st.booleans() | st.none(), min_size=n, max_size=n)), pa.bool_()),
        "date32": lambda: pa.array(data.draw(st.lists(st.dates() | st.none(), min_size=n, max_size=n)), pa.date32()),
        "timestamp_us_tz": lambda: pa.array(
            data.draw(st.lists(st.datetimes(min_value=dt.datetime(1, 1, 2)) | st.none(), min_size=n, max_size=n)),
            pa.timestamp("us", tz="Europe/Paris")),
        "timestamp_ms": lambda: pa.array(data.draw(st.lists(st.datetimes() | st.none(), min_size=n, max_size=n)),
                                         pa.timestamp("ms")),
        "null": lambda: pa.nulls(n),
        "list": lambda: pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int64())),
        "binary": lambda: pa.array(data.draw(st.lists(st.binary(max_size=8), min_size=n, max_size=n)), pa.binary()),
        "dictionary": lambda: pa.array(data.draw(st.lists(st.sampled_from(["F", "M", "x", "2019-01-01"]),
                                                          min_size=n, max_size=n))).dictionary_encode(),
        "decimal": lambda: pa.array([None] * n, pa.decimal128(10, 2)),
        "duration": lambda: pa.array(list(range(n)), pa.duration("s")),
    }
    return values[kind]()


@FUZZ
@given(table=tables, data=st.data())
def test_parquet_columns_of_any_type(bases, table, data):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = table_rows(table)
    n = len(rows) - 1
    names = list(HEADERS[table])
    columns = [pa.array([r[i] for r in rows[1:]]) for i in range(len(names))]
    for _ in range(data.draw(st.integers(1, 3), label="columns changed")):
        i = data.draw(st.integers(0, len(names) - 1), label="column")
        kind = data.draw(st.sampled_from(["int64", "float64", "string", "large_string", "bool", "date32",
                                          "timestamp_us_tz", "timestamp_ms", "null", "list", "binary",
                                          "dictionary", "decimal", "duration"]), label="type")
        columns[i] = arrow_column(kind, n, data)
    if data.draw(st.booleans(), label="duplicate a name"):
        names[-1] = names[0]
    with copy_of(bases["parquet"]) as folder:
        pq.write_table(pa.table(columns, names=names), folder / f"{table}.parquet")
        check_clean(folder)


def test_fuzz_bases_are_valid(bases):
    for folder in bases.values():
        check_clean(folder)
        registry, problems = read_registry(folder)
        assert not problems + validate_registry(registry)
        assert isinstance(registry.tables["pft"], pd.DataFrame)


def test_byte_mutation_helper():
    assert mutate_bytes(b"abcdef", [(1, ord("X"))], b"", None) == b"aXcdef"
    assert mutate_bytes(b"abcdef", [], b"", 3) == b"abc"
    assert list(csv.reader(io.StringIO(csv_text([["a,b", "c"]]))))[0] == ["a,b", "c"]
