"""The typer application object and the pieces every command shares.

This package is the only place in ildstudy that prints, reads argv or sets exit codes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Callable

import typer
from rich.console import Console

from ildstudy import __version__

app = typer.Typer(
    name="ildstudy",
    help="Retrospective treatment-comparison studies on ILD registries: registry -> cohort -> models -> report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# When piped (CI logs, files) rich would wrap tables at 80 columns; use a wide, fixed width instead.
out = Console(highlight=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"ildstudy {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """ildstudy: run a retrospective treatment-comparison study from raw registry tables to a report."""


QUIET_HELP = ("No progress display and no summary lines; warnings and errors still go to stderr, and the exit "
              "code says whether it worked.")


def quiet_option():
    """The ``--quiet`` option shared by the commands with long steps (run, demo, synth, validate, load)."""
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


def info(message: str, quiet: bool = False) -> None:
    """Print an informational line on stdout unless ``quiet`` (plain text: no markup taken from values)."""
    if not quiet:
        out.print(message, markup=False)


@contextlib.contextmanager
def progress(description: str, total: int | None = None, quiet: bool = False) -> Iterator[Callable[..., None]]:
    """Yield an ``advance(n=1, description=None)`` callback that drives a rich progress bar.

    The bar is shown only when stderr is a terminal and ``quiet`` is false; otherwise nothing is printed.
    """
    if quiet or not err.is_terminal:
        yield lambda *a, **k: None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}" if total else ""),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            if description is not None:
                bar.update(task, description=description)
            bar.advance(task, n)

        yield advance
