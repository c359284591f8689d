"""``ildstudy power``: simulation-based power of a protocol's arm comparison (see docs/power.md)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from pathlib import Path

import typer
from rich.table import Table

from ildstudy.cli.app import app, err, out, progress


@app.command()
def power(
    protocol: str = typer.Argument(..., help="A protocol TOML file or a built-in name (huapaya2019)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for power.csv, power.json, replicates.csv, "
                                                    "power.svg/png and run.json."),
    patients: str = typer.Option("60:200:20", "--patients",
                                 help="Sizes: N, N1,N2,... or START:STOP:STEP (stop included). Every patient "
                                      "is eligible; 60% are in the treatment arm (66/44 at 110)."),
    effect: list[str] = typer.Option(..., "--effect",
                                     help="OUTCOME@MONTH=DELTA: the true adjusted difference treatment - "
                                          "reference at MONTH (e.g. fvc_pct_pred@36=5); repeat for several "
                                          "outcomes."),
    reps: int = typer.Option(500, "--reps", min=1, help="Replicates per size."),
    seed: int = typer.Option(2019, "--seed", min=0, help="Seed; the same seed gives the same numbers "
                                                          "whatever the number of workers."),
    alpha: float = typer.Option(0.05, "--alpha", help="Two-sided significance level."),
    workers: int = typer.Option(None, "--workers", min=1, show_default=False,
                                help="Worker processes (default: the number of CPUs; 1: no pool)."),
) -> None:
    """Power per number of patients: simulate sampled registries with the effect, run the protocol's
    cohort and outcome model, count rejections (with Monte-Carlo error)."""
    from ildstudy.analysis.power import PowerSettings, simulate_power
    from ildstudy.cli.study_commands import run_inputs
    from ildstudy.protocol import load_protocol
    from ildstudy.report.outdir import check_output_dir
    from ildstudy.report.power_outputs import write_power_outputs

    settings = PowerSettings.build(sizes=patients, effects=effect, reps=reps, seed=seed, alpha=alpha,
                                   workers=workers)
    proto = load_protocol(protocol)
    inputs = run_inputs(protocol, None, None)
    check_output_dir(out_dir, inputs=inputs)        # refuse at once, before the (long) simulation
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    total = len(settings.sizes) * settings.reps
    with progress(f"Simulating {total} registries", total=total) as advance:
        result = simulate_power(settings, proto, on_replicate=lambda done, _total: advance())
    seconds = time.perf_counter() - t0
    run = {"started": started.isoformat(timespec="seconds"), "seconds": round(seconds, 1),
           "workers": settings.n_workers, "cpus": os.cpu_count(), "host": platform.node(),
           "platform": platform.platform(), "python": platform.python_version(),
           "command": "ildstudy power " + " ".join(_argv_tail())}
    write_power_outputs(result, out_dir, run=run, inputs=inputs)

    table = Table("n", f"{proto.treatment_arm}/{proto.reference_arm}", "effect", "power", "MC SE", "95% CI",
                  "failed", "mean estimate", title=f"Power of {result.contrast}, alpha {settings.alpha:g}, "
                                                   f"{settings.reps} replicates per size")
    for p in result.points:
        table.add_row(str(p.n), f"{p.n_treatment}/{p.n_reference}", f"{p.outcome}@{p.month:g}={p.delta:g}",
                      f"{p.power:.3f}", f"{p.mcse:.3f}", f"{p.ci_low:.3f}-{p.ci_high:.3f}", str(p.failed),
                      f"{p.mean_estimate:.2f}")
    out.print(table)
    out.print(f"{total} replicates in {seconds:.0f} s with {settings.n_workers} worker(s); wrote {out_dir}")


def _argv_tail() -> list[str]:
    import sys

    args = sys.argv[1:]
    return args[args.index("power") + 1:] if "power" in args else args
