"""Commands on registries and protocols: synth, validate, load, protocol show, demo."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from ildstudy.cli.app import app, err, info, out, progress, quiet_option
from ildstudy.errors import DataError, Problem

protocol_app = typer.Typer(help="Show built-in protocols.", no_args_is_help=True)
app.add_typer(protocol_app, name="protocol")


class Format(str, Enum):
    csv = "csv"
    parquet = "parquet"
    xlsx = "xlsx"
    duckdb = "duckdb"
    omop = "omop"
    omop_csv = "omop-csv"


class Design(str, Enum):
    balanced = "balanced"
    sampled = "sampled"


@app.command()
def synth(
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the registry tables and truth.json into."),
    patients: int = typer.Option(None, "--patients", min=1,
                                 help="Number of patients (default: the calibrated registry of the published study)."),
    seed: int = typer.Option(2019, "--seed", help="Random seed; the same seed gives the same bytes."),
    fmt: Format = typer.Option(Format.csv, "--format",
                               help="File format of the tables (omop: an OMOP CDM v5.4 in cdm.duckdb; omop-csv: the "
                                    "same CDM as one CSV file per table)."),
    design: Design = typer.Option(
        None, "--design", show_default=False,
        help="balanced: outcome data built so that the study's mixed models recover the planted effects up to "
             "rounding (at most 50,000 patients); sampled: random effects and residuals drawn independently, as "
             "a recovery or power study needs. Default: balanced without --patients (the calibrated registry), "
             "sampled with --patients. truth.json records the design."),
    confounding: float = typer.Option(
        0.0, "--confounding", min=0.0,
        help="Plant confounding by indication of this strength (log odds of the first arm per SD of severity "
             "on the baseline PFT as measured; e.g. 1.0): patients with lower baseline FVC/DLCO get AZA more "
             "often, the true arm difference has no baseline part. Sampled registries only; truth.json gains a "
             "confounding block."),
    quiet: bool = quiet_option(),
) -> None:
    """Write a synthetic raw registry calibrated to Huapaya et al. 2019, with its planted truth."""
    from ildstudy.synth import write_registry

    with progress("Generating synthetic registry", quiet=quiet):
        truth = write_registry(out_dir, n_patients=patients, seed=seed, fmt=fmt.value,
                               design=None if design is None else design.value, confounding=confounding)
    info(f"Wrote {truth.n_patients} patients ({fmt.value}, {truth.design}) and truth.json to {out_dir}", quiet)


def problem_table(problems: list[Problem]) -> Table:
    """The problems as a rich table; cells are plain text (no markup or emoji taken from values)."""
    from rich.text import Text

    table = Table("file", "row", "column", "value", "problem", "severity", show_lines=False)
    for p in problems:
        table.add_row(*(Text(v) for v in (p.file, "" if p.row is None else str(p.row), p.column or "",
                                          p.value or "", p.problem, p.severity)))
    return table


def print_problems(console, problems: list[Problem], max_per_kind: int = 20) -> None:
    """Print the problem table as wide as the terminal, or 160 columns when piped (not 80, which
    wraps every cell).

    At most ``max_per_kind`` rows are shown per kind of problem (same file, severity and problem text,
    ignoring any parenthesised hint); one more row counts the rest of that kind.
    """
    import io
    import re

    from rich.console import Console

    def kind(p: Problem) -> tuple[str, str, str]:
        return p.file, p.severity, re.sub(r"\s*\(.*\)\s*$", "", p.problem)

    counts: dict[tuple[str, str, str], int] = {}
    shown: list[Problem] = []
    for p in problems:
        k = kind(p)
        counts[k] = counts.get(k, 0) + 1
        if counts[k] <= max_per_kind:
            shown.append(p)
    for (file, severity, text), n in counts.items():
        if n > max_per_kind:
            shown.append(Problem(file, None, None, None, f"... and {n - max_per_kind} more like '{text}'", severity))
    width = console.width if console.is_terminal else 160
    buffer = Console(file=io.StringIO(), width=width, color_system=None, highlight=False, emoji=False)
    buffer.print(problem_table(shown))
    console.print(buffer.file.getvalue(), markup=False, highlight=False, emoji=False, end="")


@app.command()
def validate(
    data: Path = typer.Argument(None, help="Registry folder (CSV, Parquet or XLSX tables), or with --profile a "
                                           "centre's export / REDCap project folder. Omit with --omop."),
    profile: Path = typer.Option(None, "--profile", help="Mapping profile TOML that reads DATA (see docs/inputs.md)."),
    omop: str = typer.Option(None, "--omop", help="Check an OMOP CDM v5.4 instead (DuckDB file, folder of CDM CSV "
                                                  "files or postgresql:// URL), "
                                                  "read as 'ildstudy run --omop' reads it."),
    cdm_schema: str = typer.Option(None, "--cdm-schema", help="Schema of the CDM tables (default main / public)."),
    protocol: str = typer.Option(None, "--protocol", help="With --omop: the protocol whose [omop] concept sets "
                                                          "to use (default: the built-in defaults)."),
    quiet: bool = quiet_option(),
) -> None:
    """Check every table of a registry and report every problem at once; exit 2 if any is an error.

    Problems are shown as a table (file, row, column, value, problem, severity), then, when
    there are errors, once more as one line each on stderr, ending with a one-line summary.
    Warnings alone print the table on stdout and exit 0.
    """
    from ildstudy.data import check_registry
    from ildstudy.data.validate import in_file_order, summary

    from ildstudy.errors import IldStudyError

    if (data is None) == (omop is None):
        raise IldStudyError("give a registry folder or --omop URL (exactly one)")
    with progress("Checking registry", quiet=quiet):
        if omop is not None:
            from ildstudy.data.database import mask_dsn
            from ildstudy.data.omop import check_omop
            from ildstudy.protocol import load_protocol

            registry, problems = check_omop(omop, cdm_schema, load_protocol(protocol) if protocol else None)
            data = mask_dsn(omop)
        else:
            registry, problems = check_registry(data, profile)
            problems = in_file_order(problems)
    errors = [p for p in problems if p.severity == "error"]
    console = err if errors or quiet else out  # --quiet: stdout stays empty, findings go to stderr
    if problems:
        print_problems(console, problems)
    if errors:
        raise DataError(problems + [Problem("", None, None, None, summary(problems, data))])
    n_patients = len(registry.tables["patients"]) if "patients" in registry.tables else 0
    rows = sum(len(t) for t in registry.tables.values())
    checked = f"{len(registry.tables)} tables, {n_patients:,} patients, {rows:,} rows"
    if problems:
        info(f"{summary(problems, data)} Checked {checked}.", quiet)
    else:
        info(f"{data}: valid, no problems found ({checked}).", quiet)


@app.command()
def load(
    data: Path = typer.Argument(..., help="Registry folder (CSV, Parquet or XLSX tables)."),
    db: str = typer.Option(..., "--db", help="Target database: a DuckDB file path (or duckdb:///path) "
                                             "or postgresql://user@host/dbname."),
    quiet: bool = quiet_option(),
) -> None:
    """Validate a registry and write its tables, with real types, into a database."""
    from ildstudy.data import load_registry
    from ildstudy.data.database import write_registry_to

    with progress("Loading registry", quiet=quiet) as advance:
        registry = load_registry(data)
        advance()
        where = write_registry_to(registry, db)
    for p in registry.problems:
        err.print(f"ildstudy: warning: {p}", markup=False)
    rows = sum(len(t) for t in registry.tables.values())
    info(f"Loaded {len(registry.tables)} tables ({rows} rows) into {where}", quiet)


@protocol_app.command("show")
def protocol_show(name: str = typer.Argument("huapaya2019", help="Built-in protocol name.")) -> None:
    """Print a built-in protocol (TOML) to copy and edit."""
    from ildstudy.protocol import builtin_protocol_text

    out.print(builtin_protocol_text(name), markup=False, end="")
