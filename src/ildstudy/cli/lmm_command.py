"""``ildstudy lmm DATA.csv --formula F [--ml] [--json]``: fit one linear mixed model from a CSV file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ildstudy.cli.app import app, err, out
from ildstudy.errors import ModelError


@app.command("lmm")
def lmm(
    data: Path = typer.Argument(..., help="CSV file, one row per observation (string columns are factors)."),
    formula: str = typer.Option(..., "--formula", "-f", help='lme4 formula, e.g. "y ~ x + (1 + t | id)".'),
    ml: bool = typer.Option(False, "--ml", help="Maximum likelihood instead of REML."),
    as_json: bool = typer.Option(False, "--json", help="Print the fit as one JSON object."),
) -> None:
    """Fit a linear mixed model as lme4/lmerTest would and print its summary (or JSON)."""
    from ildstudy.lmm import fit_lmm

    frame = _read_csv(data)
    fit = fit_lmm(formula, frame, reml=not ml)
    if as_json:
        out.print(json.dumps(fit.to_dict(), indent=2), markup=False, highlight=False)
        return
    out.print(fit.summary(), markup=False, highlight=False)
    if fit.n_dropped:
        err.print(f"ildstudy: note: {fit.n_dropped} row(s) with missing values were dropped", markup=False)


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        return pd.read_csv(path, engine="pyarrow")
    except Exception:  # noqa: BLE001 - fall back to the C parser for its clearer messages
        try:
            return pd.read_csv(path)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ModelError(f"{path}: cannot read as CSV: {exc}") from None
