"""ildstudy import: a centre's export or a REDCap project -> a canonical registry folder (or a draft profile)."""

from __future__ import annotations

from pathlib import Path

import typer

from ildstudy.cli.app import app, err, out, progress
from ildstudy.errors import DataError, IldStudyError, Problem


@app.command("import")
def import_(
    first: Path = typer.Argument(..., metavar="PROFILE", help="Mapping profile TOML (with --infer: the RAW_DIR)."),
    raw_dir: Path = typer.Argument(None, metavar="RAW_DIR", help="Folder of the centre's files or REDCap export."),
    out_path: Path = typer.Option(None, "--out", help="Registry folder to write (with --infer: the draft profile "
                                                      "file, default RAW_DIR/../profile.draft.toml)."),
    infer: bool = typer.Option(False, "--infer", help="Write a draft profile from RAW_DIR's files, to check and edit."),
) -> None:
    """Read a centre's export through a mapping profile and write it as a canonical registry.

    Every unreadable value and every unmapped column is reported with file, row, column and value;
    with any error nothing is written (exit 2). `ildstudy import --infer RAW_DIR` drafts a profile.
    """
    if infer:
        if raw_dir is not None:
            raise IldStudyError("with --infer give only RAW_DIR (ildstudy import --infer RAW_DIR [--out DRAFT.toml])")
        _infer(first, out_path)
        return
    if raw_dir is None or out_path is None:
        raise IldStudyError("usage: ildstudy import PROFILE.toml RAW_DIR --out REGISTRY (or --infer RAW_DIR)")
    from ildstudy.cli.data_commands import print_problems
    from ildstudy.data import check_registry
    from ildstudy.data.canonical_writer import write_canonical_tables
    from ildstudy.data.profiles import load_profile
    from ildstudy.data.validate import in_file_order, summary
    from ildstudy.report.outdir import atomic_output_dir, check_output_dir

    check_output_dir(out_path, inputs=[raw_dir, first])
    profile = load_profile(first)
    with progress("Importing"):
        registry, problems = check_registry(raw_dir, profile)
    problems = in_file_order(problems)
    errors = [p for p in problems if p.severity == "error"]
    if problems:
        print_problems(err if errors else out, problems)
    if errors:
        raise DataError(problems + [Problem("", None, None, None, summary(problems, raw_dir) +
                                            " Nothing was written.")])
    with atomic_output_dir(out_path, inputs=[raw_dir, first], kind="import") as tmp:
        write_canonical_tables(registry, tmp)
        (tmp / "profile.toml").write_text(profile.to_toml(), encoding="utf-8")
    rows = sum(len(t) for t in registry.tables.values())
    out.print(f"Imported {len(registry['patients']):,} patients ({rows:,} rows) from {raw_dir} into {out_path} "
              f"({len(problems)} warnings). Run: ildstudy run huapaya2019 {out_path} --out STUDY", markup=False)


def _infer(raw_dir: Path, draft: Path | None) -> None:
    from ildstudy.data.profiles.infer import infer_profile

    if not raw_dir.is_dir():
        raise DataError(Problem(str(raw_dir), None, None, None, "folder does not exist"))
    draft = draft or raw_dir.resolve().parent / "profile.draft.toml"
    if draft.exists():
        raise IldStudyError(f"{draft} exists; give another --out (a draft never overwrites a file)")
    text, notes = infer_profile(raw_dir)
    try:
        draft.write_text(text, encoding="utf-8")
    except OSError as exc:
        from ildstudy.report.outdir import os_reason

        raise IldStudyError(f"cannot write {draft}: {os_reason(exc)}") from exc
    for note in notes:
        err.print(f"ildstudy: check: {note}", markup=False)
    out.print(f"Wrote the draft profile {draft} ({len(notes)} things to check). Edit it, then run: "
              f"ildstudy import {draft} {raw_dir} --out REGISTRY", markup=False)
