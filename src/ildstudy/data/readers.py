"""Find the registry's files and read them into raw DataFrames, reporting file-level problems.

A registry is a folder with one file per canonical table (``patients.csv``, ``pft.parquet``,
``medications.xlsx``, ...). Reading keeps every row that has a value; types are assigned
later by :mod:`ildstudy.data.coerce`.

Row numbers are the ones a user sees: for CSV and XLSX the header is row 1 and the first
data row row 2 (a blank line or a row of empty cells still counts, as in a spreadsheet);
for Parquet the first record is row 1. Each :class:`RawTable` carries the row number of
every frame row, because blank and malformed rows are left out of the frame.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.data.schema import FILE_SUFFIXES, TABLES, TABLES_BY_NAME, TableSpec
from ildstudy.errors import Problem

MAX_PER_KIND = 20
"""At most this many problems of one kind per (file, column); then one summary line."""

ROWS_ATTR = "ildstudy_rows"
"""Key in ``DataFrame.attrs`` holding each row's number in its file, when not index + offset."""

NOT_UTF8 = ("is not UTF-8 text (the file looks like Latin-1/Windows-1252); "
            "save the file as 'CSV UTF-8'")
RAGGED = "has {n} values but the header has {header} columns"
UNMATCHED_QUOTE = "has a quote (\") that is never closed, so the rest of the file is read as one value"
_BOM = b"\xef\xbb\xbf"
_VALUE_WIDTH = 40
MAX_HEADER_NAMES = 10
"""Header problems of one kind (unknown, unnamed or repeated columns) beyond this many are one line."""
_HEAD_BYTES = 1 << 16
_MAX_HEADER_BYTES = 1 << 22


@dataclass(frozen=True, slots=True)
class RawTable:
    """A table as read from its file: the columns found in the file, every non-empty row.

    ``frame`` has the file's columns under their canonical names (matched ignoring case,
    spaces, hyphens and underscores); unknown and repeated columns are left out. ``rows``
    holds each frame row's number in the file (``None``: the frame index + ``row_offset``).
    ``problems`` are those found while reading that do not stop the table from being checked
    (a missing column, a ragged row, a non-UTF-8 cell); :func:`~ildstudy.data.coerce.coerce_table`
    reports them with its own.
    """

    spec: TableSpec
    path: Path
    frame: pd.DataFrame
    row_offset: int
    rows: np.ndarray | None = None
    problems: tuple[Problem, ...] = ()

    def row_numbers(self) -> np.ndarray:
        """The row number, as users see it in the file, of each frame row (int64 array)."""
        if self.rows is not None:
            return self.rows
        return np.arange(len(self.frame), dtype=np.int64) + self.row_offset


def source_rows(frame: pd.DataFrame, path: Path | None) -> np.ndarray:
    """Row numbers of a typed table's rows in its file (kept in ``frame.attrs`` by coerce)."""
    rows = frame.attrs.get(ROWS_ATTR)
    if rows is not None and len(rows) == len(frame):
        return np.asarray(rows)
    offset = 1 if path is not None and path.suffix.lower() == ".parquet" else 2
    return np.arange(len(frame), dtype=np.int64) + offset


def located_problems(
    file: str, rows: np.ndarray, mask, column: str | None, values, text: str, severity: str = "error",
) -> list[Problem]:
    """One :class:`Problem` per true cell of ``mask`` (at most :data:`MAX_PER_KIND`, then a summary).

    ``rows`` gives each position's row number in the file; ``values`` is indexable by position
    and gives the cell as the user wrote it. Only the flagged positions are visited.
    """
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    out = [Problem(file, int(rows[i]), column, shorten(values[i]), text, severity)
           for i in idx[:MAX_PER_KIND]]
    if len(idx) > MAX_PER_KIND:
        subject = "where the value " if column else "that "
        out.append(Problem(file, None, column, None,
                           f"... and {len(idx) - MAX_PER_KIND} more rows {subject}{text}", severity))
    return out


def shorten(value: object) -> str:
    """A cell value for a message: text, control characters escaped, at most 40 characters."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


def find_table_files(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Map each canonical table name to its file in ``folder``; report missing, doubled or unknown files.

    File names are matched ignoring case (``Patients.CSV`` is ``patients``); spreadsheet lock
    files (``~$...``) and hidden files are skipped.
    """
    folder = Path(folder)
    problems: list[Problem] = []
    if not folder.exists():
        return {}, [Problem(str(folder), None, None, None, "registry folder does not exist")]
    if not folder.is_dir():
        return {}, [Problem(str(folder), None, None, None, "is not a folder (expected a folder of table files)")]
    by_stem: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(("~$", ".")) or p.suffix.lower() not in FILE_SUFFIXES or not p.is_file():
            continue
        by_stem.setdefault(p.stem.lower(), []).append(p)
    found: dict[str, Path] = {}
    for spec in TABLES:
        paths = by_stem.get(spec.name, [])
        if not paths:
            if spec.required:
                problems.append(Problem(
                    f"{spec.name}.csv", None, None, None,
                    f"missing table '{spec.name}' (expected {spec.name}.csv, .parquet or .xlsx in {folder})",
                ))
        elif len(paths) > 1:
            problems.append(Problem(
                paths[0].name, None, None, None,
                f"table '{spec.name}' is given twice ({', '.join(p.name for p in paths)}); keep one",
            ))
        else:
            found[spec.name] = paths[0]
    for stem, paths in by_stem.items():
        if stem not in TABLES_BY_NAME:
            close = difflib.get_close_matches(stem, list(TABLES_BY_NAME), n=1, cutoff=0.75)
            hint = f"did you mean '{close[0]}'?" if close else f"tables are {', '.join(TABLES_BY_NAME)}"
            for p in paths:
                problems.append(Problem(p.name, None, None, None,
                                        f"is not a registry table and is ignored ({hint})", "warning"))
    return found, problems


def read_raw_table(spec: TableSpec, path: Path) -> tuple[RawTable | None, list[Problem]]:
    """Read one file with every value as found (CSV: text; Parquet/XLSX: their cell types).

    Returns ``(None, problems)`` when the file cannot be read at all (empty, not text, wrong
    delimiter, not a Parquet/XLSX file); otherwise the table, whose ``problems`` list what was
    found while reading, and an empty list.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    kind = {".csv": "CSV", ".parquet": "Parquet", ".xlsx": "an Excel workbook"}.get(suffix, suffix)
    try:
        if suffix == ".csv":
            frame, rows, fatal, problems = _read_csv(path, spec)
            offset = 2
        elif suffix == ".parquet":
            frame, rows, fatal, problems = _read_parquet(path), None, [], []
            offset = 1
        else:
            frame, rows, fatal, problems = _read_xlsx(path)
            offset = 2
    except (Exception, MemoryError) as exc:  # noqa: BLE001 - any reader failure is a problem with the file
        return None, [Problem(path.name, None, None, None,
                              f"cannot be read as {kind} (is it damaged, or saved in another format?): {_short(exc)}")]
    if fatal:
        return None, fatal
    if frame.shape[1] == 0 and len(frame) == 0:
        return None, [Problem(path.name, None, None, None, "is empty (expected a header row)")]
    if rows is None:
        rows = np.arange(len(frame), dtype=np.int64) + offset
    frame, header_problems = _match_header(spec, path, frame)
    frame, rows = _drop_empty_rows(frame, rows)
    problems = header_problems + problems
    return RawTable(spec, path, frame, offset, rows, tuple(problems)), []


# -- CSV ------------------------------------------------------------------------------------------

def _read_csv(path: Path, spec: TableSpec
              ) -> tuple[pd.DataFrame | None, np.ndarray | None, list[Problem], list[Problem]]:
    """Return (frame of text columns named by position, row numbers, fatal problems, other problems).

    The file's start and its header line are checked first, from at most a few MiB read from disk: a file
    that is binary, not comma-separated, or whose row 1 names none of the table's columns is refused
    before its body is read or parsed (a 200 MB file of junk is refused at once).
    """
    head, whole = _read_head(path)
    name = path.name

    def fatal(text: str, row: int | None = None):
        return None, None, [Problem(name, row, None, None, text)], []

    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return fatal("is UTF-16 text; save the file as 'CSV UTF-8' (comma-separated)")
    if head.startswith(b"PK\x03\x04"):
        return fatal("is a zip or Excel file, not CSV text; name it .xlsx or save it as 'CSV UTF-8'")
    bom = len(_BOM) if head.startswith(_BOM) else 0
    head = head[bom:]
    if whole and (not head or head.isspace()):
        return fatal("is empty (expected a header row)")
    if b"\x00" in head[:_HEAD_BYTES]:
        return fatal("is not a text file (it contains NUL bytes); save it as 'CSV UTF-8'")
    first = _first_line(head)
    if len(first) == len(head) and not whole:
        return fatal(f"is not a header row: row 1 is longer than {_MAX_HEADER_BYTES >> 20} MiB "
                     "without a line break (is this a CSV file?)", 1)
    header_line = first.decode("utf-8", "replace")
    if "," not in header_line:
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in header_line:
                return fatal(f"is separated by {what}, not commas; save it as comma-separated 'CSV UTF-8'", 1)
    names = next(csv.reader([header_line]), [])
    if not names:
        return fatal("is empty (expected a header row)")
    if not any(_known_column(spec, n) for n in names):
        return None, None, [_not_a_header(spec, path, names)], []
    data = head if whole else _read_body(path)[bom:]
    if len(first) == len(data):  # a header with no line break after it: a table with no rows
        data += b"\n"
    latin = not _is_utf8(data)
    if latin:  # read it as Windows-1252 so every other problem can still be found, and say so
        data = data.decode("cp1252", errors="replace").encode("utf-8")
        header_line = _first_line(data).decode("utf-8")
        names = next(csv.reader([header_line]), names)
    frame, rows, problems = _parse_csv(name, data, names)
    frame.columns = names
    if latin:
        problems = _encoding_problems(name, frame, rows) + problems
    return frame, rows, [], problems


def _read_head(path: Path) -> tuple[bytes, bool]:
    """The file's first bytes, through the end of row 1 (at least 64 KiB, at most 4 MiB), and whether
    that is the whole file."""
    chunks: list[bytes] = []
    size = 0
    with open(path, "rb") as fh:
        while size < _MAX_HEADER_BYTES:
            chunk = fh.read(_HEAD_BYTES)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
            if size >= _HEAD_BYTES and re.search(rb"[\r\n]", chunk):
                break
        whole = not fh.read(1)
    return b"".join(chunks), whole


def _read_body(path: Path) -> bytes:
    """The whole file, read once its header has been checked."""
    return path.read_bytes()


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, checked by Arrow without copying or decoding it."""
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    blob = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        blob.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _first_line(data: bytes) -> bytes:
    """The header line, ended by LF, CRLF or a lone CR."""
    return re.match(rb"[^\r\n]*", data).group(0)


def _parse_csv(name: str, data: bytes, names: list[str]) -> tuple[pd.DataFrame, np.ndarray, list[Problem]]:
    """Parse the records after the header, every field as text; report ragged rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    positional = [f"f{i}" for i in range(len(names))]

    def parse(threads: bool):
        invalid: list = []

        def on_invalid(row) -> str:
            invalid.append((row.number, row.actual_columns, row.text))
            return "skip"

        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=threads, column_names=positional, skip_rows=1,
                                           block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True,
                                             escape_char=False, newlines_in_values=True,
                                             ignore_empty_lines=False, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in positional},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                 check_utf8=True),
        )
        return table, invalid

    table, invalid = parse(threads=True)
    if invalid and any(number is None for number, _, _ in invalid):
        table, invalid = parse(threads=False)  # only a serial parse knows the row numbers
    frame = arrow_to_frame(table)
    n_records = 1 + table.num_rows + len(invalid)
    bad_rows = np.array(sorted(int(number) for number, _, _ in invalid), dtype=np.int64)
    rows = np.setdiff1d(np.arange(2, n_records + 1, dtype=np.int64), bad_rows, assume_unique=True)
    problems: list[Problem] = []
    extra_rows: list[tuple[int, list[str]]] = []
    ragged: dict[str, list[tuple[int, str]]] = {}
    for number, actual, text in sorted(invalid, key=lambda r: r[0]):
        if actual > len(names):
            values = next(csv.reader([text]), [])
            if len(values) > len(names) and not any(v.strip() for v in values[len(names):]):
                extra_rows.append((int(number), values[: len(names)]))  # only empty extras: harmless
                continue
            kind = RAGGED
        elif actual <= 1 and not text.strip():
            continue  # a blank line
        else:
            kind = UNMATCHED_QUOTE if text.count('"') % 2 else RAGGED
        ragged.setdefault(kind.format(n=actual, header=len(names)), []).append((int(number), text))
    for kind, found in ragged.items():
        numbers = np.array([r for r, _ in found])
        problems += located_problems(name, numbers, np.ones(len(found), bool), None, [v for _, v in found], kind)
    if extra_rows:
        extra = pd.DataFrame([v for _, v in extra_rows], columns=positional, dtype=frame.dtypes.iloc[0])
        frame = pd.concat([frame, extra], ignore_index=True)
        rows = np.concatenate([rows, np.array([r for r, _ in extra_rows], dtype=np.int64)])
        order = np.argsort(rows, kind="stable")
        frame, rows = frame.iloc[order].reset_index(drop=True), rows[order]
    return frame, rows, problems


def arrow_to_frame(table) -> pd.DataFrame:
    """A pyarrow Table as a DataFrame: text as pandas' pyarrow-backed strings, dates as datetime64.

    Column names are kept as they are, repeats and blanks included.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [str(f.name) for f in table.schema]
    columns = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        if pa.types.is_date(col.type):
            col = pc.cast(col, pa.timestamp("s"))
        columns.append(col)
    table = pa.table(columns, names=[f"c{i}" for i in range(len(columns))])
    text = pd.StringDtype("pyarrow")
    frame = table.to_pandas(
        types_mapper=lambda t: text if t in (pa.string(), pa.large_string()) else None,
        coerce_temporal_nanoseconds=False, split_blocks=True,
    )
    frame.columns = names
    return frame


def _encoding_problems(name: str, frame: pd.DataFrame, rows: np.ndarray) -> list[Problem]:
    problems = [Problem(name, 1, c, shorten(c), NOT_UTF8) for c in frame.columns if not c.isascii()]
    for c in frame.columns:
        text = frame[c]
        problems += located_problems(name, rows, text.str.contains(r"[^\x00-\x7f]", regex=True).to_numpy(bool),
                                     c, text.to_numpy(object), NOT_UTF8)
    return problems or [Problem(name, None, None, None, NOT_UTF8)]


# -- Parquet and XLSX -----------------------------------------------------------------------------

def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table.validate(full=True)  # a damaged file can hold text that is not UTF-8 or broken offsets
    return arrow_to_frame(table)


def _read_xlsx(path: Path) -> tuple[pd.DataFrame, np.ndarray | None, list[Problem], list[Problem]]:
    """The first sheet; row 1 is the header. Cells keep their spreadsheet types.

    Every other sheet is ignored with a warning naming it and the sheet that is read.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pd.ExcelFile(path, engine="openpyxl") as book:
            sheet_names = [str(n) for n in book.sheet_names]
            sheet = book.parse(sheet_name=0, header=None, dtype=object, keep_default_na=False, na_values=[])
    first = shorten(sheet_names[0]) if sheet_names else ""
    problems = [Problem(path.name, None, None, None,
                        f"sheet '{shorten(n)}' is ignored: only the first sheet, '{first}', is read", "warning")
                for n in sheet_names[1:1 + MAX_HEADER_NAMES]]
    if len(sheet_names) > 1 + MAX_HEADER_NAMES:
        problems.append(Problem(path.name, None, None, None,
                                f"... and {len(sheet_names) - 1 - MAX_HEADER_NAMES} more sheets are ignored: "
                                f"only the first sheet, '{first}', is read", "warning"))
    if sheet.empty:
        return pd.DataFrame(), None, [Problem(path.name, None, None, None,
                                              f"is empty: its first sheet ('{first}') has no cells "
                                              "(expected a header row)")], []
    names = ["" if _is_blank(v) else str(v) for v in sheet.iloc[0]]
    frame = sheet.iloc[1:].reset_index(drop=True)
    frame.columns = names
    return frame, np.arange(len(frame), dtype=np.int64) + 2, [], problems


# -- header and rows ------------------------------------------------------------------------------

def _squash(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def _known_column(spec: TableSpec, raw_name: object) -> str | None:
    """The canonical column a header cell names (ignoring case, spaces, hyphens, underscores), if any."""
    name = str(raw_name).replace("\ufeff", "").strip()
    if name in spec.column_names:
        return name
    return {_squash(c): c for c in spec.column_names}.get(_squash(name))


def _not_a_header(spec: TableSpec, path: Path, names) -> Problem:
    return Problem(
        path.name, 1, None, shorten(",".join(str(c) for c in list(names)[:4])),
        f"is not a header row: none of the {spec.name} columns were found; row 1 must hold the column "
        f"names ({', '.join(spec.column_names)})")


def _listed(names: list[str]) -> str:
    """``'a', 'b', ... and N more`` for at most :data:`MAX_HEADER_NAMES` names."""
    shown = ", ".join(f"'{n}'" for n in names[:MAX_HEADER_NAMES])
    more = len(names) - MAX_HEADER_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _match_header(spec: TableSpec, path: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Rename the file's columns to canonical names; drop unknown and repeated ones; report them.

    Up to :data:`MAX_HEADER_NAMES` unknown, unnamed or repeated columns are reported one per line;
    more are reported in one line that lists the first ones and counts the rest.
    """
    by_squash = {_squash(c): c for c in spec.column_names}
    problems: list[Problem] = []
    keep: list[int] = []
    canonical: list[str] = []
    unknown: list[tuple[int, str]] = []
    repeated: list[tuple[str, str]] = []
    for i, raw_name in enumerate(frame.columns):
        name = str(raw_name).replace("\ufeff", "").strip()
        target = name if name in spec.column_names else by_squash.get(_squash(name))
        if target is None:
            unknown.append((i, name))
        elif target in canonical:
            repeated.append((target, name))
        else:
            keep.append(i)
            canonical.append(target)
    if not canonical:
        return frame.iloc[:, []], [_not_a_header(spec, path, frame.columns)]
    if len(repeated) <= MAX_HEADER_NAMES:
        problems += [Problem(path.name, 1, target, shorten(name),
                             "column appears more than once in the header (the first one is used)")
                     for target, name in repeated]
    else:
        problems.append(Problem(path.name, 1, None, None,
                                f"{len(repeated)} columns repeat an earlier column of the header (the first one "
                                f"is used): {_listed([shorten(n) for _, n in repeated])}"))
    unnamed = [i for i, name in unknown if (not name or name.startswith("Unnamed: ")) and _has_values(frame.iloc[:, i])]
    named = [(i, name) for i, name in unknown if name and not name.startswith("Unnamed: ")]
    if len(unnamed) <= MAX_HEADER_NAMES:
        problems += [Problem(path.name, 1, f"column {_letters(i)}", None,
                             "has values but no name in the header and is ignored", "warning") for i in unnamed]
    else:
        problems.append(Problem(path.name, 1, None, None,
                                f"{len(unnamed)} columns have values but no name in the header and are ignored: "
                                f"columns {_listed([_letters(i) for i in unnamed])}".replace("'", ""), "warning"))
    columns_are = f"{spec.name} columns are {', '.join(spec.column_names)}"
    if len(named) <= MAX_HEADER_NAMES:
        for _, name in named:
            close = difflib.get_close_matches(name, spec.column_names, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close and close[0] not in canonical else columns_are
            problems.append(Problem(path.name, 1, shorten(name), None, f"unknown column, ignored ({hint})", "warning"))
    else:
        problems.append(Problem(path.name, 1, None, None,
                                f"{len(named)} unknown columns, ignored: {_listed([shorten(n) for _, n in named])} "
                                f"({columns_are})", "warning"))
    for c in spec.required_columns:
        if c not in canonical:
            problems.append(Problem(path.name, 1, c, None, "required column is missing from the header"))
    out = frame.iloc[:, keep]
    out.columns = canonical
    return out, problems


def _drop_empty_rows(frame: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Leave out rows with no value in any known column (blank lines, ',,,,' rows)."""
    if frame.shape[1] == 0:
        return frame.iloc[:0], rows[:0]
    empty = np.ones(len(frame), dtype=bool)
    for c in frame.columns:
        empty &= ~_has_value_mask(frame[c])
        if not empty.any():
            return frame, rows
    keep = ~empty
    return frame.loc[keep].reset_index(drop=True), rows[keep]


def _has_value_mask(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.StringDtype) or pd.api.types.is_object_dtype(s):
        if isinstance(s.dtype, pd.StringDtype):
            return (s.str.strip() != "").fillna(False).to_numpy(bool)
        return s.map(lambda v: not _is_blank(v)).to_numpy(bool)
    return s.notna().to_numpy(bool)


def _has_values(s: pd.Series) -> bool:
    return bool(_has_value_mask(s).any())


def _is_blank(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float):
        return v != v
    return isinstance(v, str) and not v.strip()


def _letters(i: int) -> str:
    """Spreadsheet column letters of 0-based column ``i`` (0 -> A, 26 -> AA)."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def _short(exc: BaseException) -> str:
    """The reader's own words, shortened, without file paths."""
    text = " ".join(str(exc).split())
    text = re.sub(r"'[^']*[/\\][^']*'", "the file", text)
    return (text[:160] + "…" if len(text) > 160 else text) or type(exc).__name__
