"""Commands that run a study: demo and run."""

from __future__ import annotations

from pathlib import Path

import typer

from ildstudy.cli.app import app, err, out, progress


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--out", help="Output folder."),
    seed: int = typer.Option(2019, "--seed", help="Seed of the synthetic registry."),
) -> None:
    """Write the calibrated synthetic registry and run every stage of the study on it."""
    from ildstudy.data import load_registry
    from ildstudy.synth import write_registry

    registry_dir = out_dir / "registry"
    with progress("Generating the synthetic registry"):
        truth = write_registry(registry_dir, n_patients=None, seed=seed, fmt="csv")
    out.print(f"Synthetic registry: {truth.n_patients} patients in {registry_dir} (planted truth in truth.json)")
    with progress("Validating the registry"):
        registry = load_registry(registry_dir)
    for p in registry.problems:
        err.print(f"ildstudy: warning: {p}", markup=False)
    rows = sum(len(t) for t in registry.tables.values())
    out.print(f"Validated: {len(registry.tables)} tables, {rows} rows, no errors")
