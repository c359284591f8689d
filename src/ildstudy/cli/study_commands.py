"""Commands that run a study: demo and run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from ildstudy.cli.app import app, err, info, out, progress, quiet_option

STEPS = 8  # validate, cohort, table 1, three models, adverse events, discontinuation


def run_inputs(protocol, data, db, omop=None) -> list[Path]:
    """The paths a run reads: the registry folder, the DuckDB file or Spark's ``tables=`` folder, the protocol file
    (not a built-in name)."""
    from ildstudy.data.database import duckdb_path
    from ildstudy.protocol import BUILTIN

    inputs = [Path(data)] if data is not None else []
    if db is not None and duckdb_path(db) is not None:
        inputs.append(duckdb_path(db))
    if db is not None and str(db).startswith("spark://"):  # the typed Parquet tables Spark reads
        from ildstudy.cohort.spark import parse_spark_url

        tables = parse_spark_url(db)[2].get("tables")
        if tables:
            inputs.append(Path(tables))
    if omop is not None and duckdb_path(omop) is not None:
        inputs.append(duckdb_path(omop))
    if str(protocol) not in BUILTIN:
        inputs.append(Path(protocol))
    return inputs


def _run_and_write(protocol, data, db, out_dir: Path, min_cell: int, include=None, notice=None,
                   kind: str = "study", profile: Path | None = None, omop: str | None = None,
                   cdm_schema: str | None = None, quiet: bool = False) -> None:
    from ildstudy.analysis.study import run_study
    from ildstudy.report.outdir import check_output_dir
    from ildstudy.report.outputs import write_stopped_outputs, write_study_outputs

    from ildstudy.cli.data_commands import print_problems
    from ildstudy.errors import CohortError, DataError

    inputs = run_inputs(protocol, data, db, omop) + ([Path(profile)] if profile is not None else [])
    check_output_dir(out_dir, inputs=inputs)  # before the (slow) study: refuse at once, write nothing
    started = dt.datetime.now(dt.timezone.utc)
    with progress("Running the study", total=STEPS + 1, quiet=quiet) as advance:
        try:
            if profile is not None:  # a centre's export or REDCap project, read through its mapping profile
                from ildstudy.data import load_registry

                advance(0, description="Reading the registry through the profile")
                data = load_registry(data, profile=profile)
            if omop is not None:  # an OMOP CDM, read into the canonical tables through the protocol's [omop]
                from ildstudy.data.omop import load_omop
                from ildstudy.protocol import load_protocol

                advance(0, description="Reading the OMOP CDM")
                protocol = load_protocol(protocol)
                data = load_omop(omop, cdm_schema, protocol)
            result = run_study(protocol, data, db=db, on_step=lambda s: advance(description=s))
        except DataError as exc:  # the same report as `ildstudy validate`, then one line per problem
            print_problems(err, exc.problems)
            err.print("ildstudy: the registry has errors; nothing was written. Fix them and run again.")
            raise
        except CohortError as exc:  # write what explains the stop (the attrition), then exit 2 with the message
            write_stopped_outputs(exc.attrition, str(exc), out_dir, inputs=inputs, kind=kind)
            where = f"{out_dir}/attrition.csv" if exc.attrition is not None else f"{out_dir}/README.txt"
            err.print(f"ildstudy: the study stopped at the cohort; see {where}", markup=False)
            raise
        if notice:
            import dataclasses

            result = dataclasses.replace(result, provenance={**result.provenance, "notice": notice})
        advance(description="Writing the report")
        write_study_outputs(result, out_dir, min_cell=min_cell, started=started, include=include, inputs=inputs,
                            kind=kind)
    for w in result.warnings:
        err.print(f"ildstudy: warning: {w}", markup=False)
    if not quiet:
        _summary(result, out_dir)


def _summary(result, out_dir: Path) -> None:
    arms = ", ".join(f"{a} {n}" for a, n in result.arms.items())
    out.print(f"Cohort: {arms}")
    ae = result.results.get("adverse_events") or {}   # the results.json form (stable keys, see docs/design.md)
    by_arm = ae.get("by_arm", {})
    parts = [f"{a} {v['patients_with_event']}/{v['n']} ({v['percent']:.1f}%)" for a, v in by_arm.items()]
    if parts:
        out.print(f"Adverse events: {' vs '.join(parts)}, {ae.get('test_name', ae.get('test'))} {_p(ae['p'])}")
    for name, o in result.outcomes.items():   # one line per contrast (every arm minus the reference)
        d = o.arm_differences
        at36 = d[d["month"] == 36]
        rows = at36 if len(at36) else d[d["month"] == d["month"].iloc[-1]]
        for _, row in rows.iterrows():
            out.print(f"{o.label}: {row['contrast']} at {row['month']:g} months = {row['estimate']:.1f} "
                      f"(95% CI {row['ci_low']:.1f} to {row['ci_high']:.1f}), {_p(row['p'])}")
    pr = result.results.get("progression") or {}
    for e in pr.get("endpoints", []):
        counts = " vs ".join(f"{c['arm']} {c['events']}/{c['analysed']}" for c in e["counts"])
        label = e["label"].replace("\u2265", ">=")  # plain ASCII for any terminal
        out.print(f"Progression, {label}: {counts}, log-rank {_p(e['logrank_p'])}")
    slope = pr.get("fvc_slope")
    if slope and slope["available"]:
        parts = [f"{r['term']} {r['estimate']:+.0f} ({r['ci_low']:+.0f} to {r['ci_high']:+.0f})"
                 for r in slope["slopes"]]
        out.print(f"FVC slope, mL/year: {'; '.join(parts)}")
    elif slope:
        out.print(f"FVC slope, mL/year: not available ({slope['reason']})")
    report = out_dir / "report.html"
    out.print(f"Outputs: {out_dir}/" + (f"  (report: {report})" if report.exists() else ""))


def _p(p: float | None) -> str:
    """``p = 0.036`` / ``p < 0.001`` by the package's one p-value formatter (``p not available`` when missing)."""
    from ildstudy.report.formatting import format_p, is_missing

    return "p not available" if is_missing(p) else format_p(p, phrase=True)


@app.command()
def run(
    protocol: str = typer.Argument(..., help="A protocol TOML file or a built-in name (huapaya2019)."),
    data: Path = typer.Argument(None, help="Registry folder (CSV, Parquet or XLSX tables). Omit with --db."),
    db: str = typer.Option(None, "--db", help="Run inside this database instead: a DuckDB file or postgresql:// URL "
                                               "(written by 'ildstudy load')."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: new, empty, or an earlier ildstudy output "
                                                    "(replaced only when the run completes); never an input "
                                                    "or a user's folder."),
    min_cell: int = typer.Option(5, "--min-cell", min=1, help="Counts below this are shown as '<N' in share/."),
    profile: Path = typer.Option(None, "--profile", help="Mapping profile TOML that reads DATA (a centre's export "
                                                         "or REDCap project; see docs/inputs.md)."),
    omop: str = typer.Option(None, "--omop", help="Read an OMOP CDM v5.4 instead: a DuckDB file, a folder of CDM "
                                                  "CSV files or a postgresql:// URL "
                                                  "(concept sets: the protocol's [omop]; see docs/inputs.md)."),
    cdm_schema: str = typer.Option(None, "--cdm-schema", help="Schema of the CDM tables (default main for DuckDB, "
                                                              "public for PostgreSQL)."),
    quiet: bool = quiet_option(),
) -> None:
    """Run a study: validate, build the cohort, fit the models, compare adverse events and discontinuation,
    write results.json, tables, figures and report.html."""
    from ildstudy.errors import IldStudyError

    if sum(x is not None for x in (data, db, omop)) != 1:
        raise IldStudyError("give a registry folder, --db URL or --omop URL (exactly one)")
    if cdm_schema is not None and omop is None:
        raise IldStudyError("--cdm-schema is the schema of --omop; give --omop URL")
    if profile is not None and data is None:
        raise IldStudyError("--profile reads a folder given as DATA; it cannot be used with --db")
    _run_and_write(protocol, data, db, out_dir, min_cell, profile=profile, omop=omop, cdm_schema=cdm_schema,
                   quiet=quiet)


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--out",
                                 help="Output folder: new, empty, or an earlier ildstudy output."),
    seed: int = typer.Option(2019, "--seed", help="Seed of the synthetic registry."),
    min_cell: int = typer.Option(5, "--min-cell", min=1, help="Counts below this are shown as '<N' in share/."),
    quiet: bool = quiet_option(),
) -> None:
    """Write the calibrated synthetic registry and run the built-in study on it, end to end."""
    from ildstudy.report.outdir import check_output_dir
    from ildstudy.synth import write_registry

    import tempfile

    check_output_dir(out_dir)  # before generating anything
    with tempfile.TemporaryDirectory(prefix="ildstudy-demo-") as tmp:
        registry_dir = Path(tmp) / "registry"
        with progress("Generating the synthetic registry", quiet=quiet):
            truth = write_registry(registry_dir, n_patients=None, seed=seed, fmt="csv")
        info(f"Synthetic registry: {truth.n_patients} patients (seed {seed}); planted truth in "
             f"{out_dir / 'registry' / 'truth.json'}", quiet)
        _run_and_write("huapaya2019", registry_dir, None, out_dir, min_cell, include={"registry": registry_dir},
                       notice="Synthetic demonstration data, not study results", kind="demo", quiet=quiet)
