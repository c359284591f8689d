"""Federated study commands: ``site summarise``, ``site answer`` and ``federate`` (docs/federated.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ildstudy.cli.app import app, out

site_app = typer.Typer(help="What a centre runs in a federated study: aggregates only leave the site.",
                       no_args_is_help=True)
app.add_typer(site_app, name="site")


def _read_json(path: Path, what: str) -> dict:
    from ildstudy.errors import IldStudyError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IldStudyError(f"{path}: cannot read the {what} ({exc})") from None


@site_app.command("summarise")
def site_summarise(
    protocol: str = typer.Argument(..., help="A .toml protocol path or a built-in name (the same at every site)."),
    data: Path = typer.Argument(..., help="The site's registry folder."),
    out_path: Path = typer.Option(..., "--out", help="The site summary (JSON) to send to the coordinator."),
    state: Path = typer.Option(None, "--state", help="Private model state kept at the site for 'site answer' "
                               "(default: OUT with suffix .private.npz). Never send it."),
    site: str = typer.Option(None, "--site", help="Site label (default: the file name of --out)."),
    min_cell: int = typer.Option(5, "--min-cell", min=1, help="Counts from 1 to min-cell − 1 are suppressed."),
) -> None:
    """Write a site's aggregates (no rows, identifiers or dates) and its private state."""
    from ildstudy.cohort import build_cohort
    from ildstudy.data import load_registry
    from ildstudy.federated.site import summarise_site
    from ildstudy.protocol import load_protocol

    proto = load_protocol(protocol)
    cohort = build_cohort(load_registry(data), proto)
    summary, site_state = summarise_site(cohort, proto, site=site or out_path.stem, min_cell=min_cell)
    state = state or out_path.with_suffix(".private.npz")
    out_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    site_state.save(state)
    out.print(f"site summary: {out_path} (send it)\nprivate state: {state} (keep it at the site)", markup=False)


@site_app.command("answer")
def site_answer(
    state: Path = typer.Argument(..., help="The private state written by 'site summarise'."),
    request: Path = typer.Argument(..., help="A request round-NNN.json from the coordinator."),
    out_path: Path = typer.Option(..., "--out", help="The answer (JSON, sums only) to send back."),
) -> None:
    """Answer one theta request with this site's sums (no per-patient values)."""
    from ildstudy.federated.exchange_files import answer_request
    from ildstudy.federated.site import SiteState

    doc = answer_request(SiteState.load(state), _read_json(request, "request"))
    out_path.write_text(json.dumps(doc), encoding="utf-8")
    out.print(f"answer: {out_path}", markup=False)


@app.command("federate")
def federate_command(
    sites: list[Path] = typer.Argument(..., help="Site summaries written by 'site summarise'."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the pooled results (federated.json)."),
    protocol: str = typer.Option("huapaya2019", "--protocol", help="The protocol the sites ran."),
    exchange: Path = typer.Option(None, "--exchange", help="Folder of the theta file exchange (requests/, answers/)."),
    state: list[Path] = typer.Option(None, "--state", help="Site states, in the order of SITES: answer the theta "
                                     "rounds in this process (all sites on one machine, e.g. a test)."),
) -> None:
    """Pool site summaries into the study; the mixed models by an exact exchange of sums."""
    from ildstudy.errors import IldStudyError
    from ildstudy.federated.exchange_files import stored_answers, write_request
    from ildstudy.federated.pooled import federate, in_process
    from ildstudy.federated.site import SiteState
    from ildstudy.protocol import load_protocol

    proto = load_protocol(protocol)
    summaries = [_read_json(p, "site summary") for p in sites]
    if bool(state) == (exchange is not None):
        raise IldStudyError("give either --exchange DIR (file exchange) or one --state per site (in process)")
    if state:
        if len(state) != len(summaries):
            raise IldStudyError(f"{len(state)} --state file(s) for {len(summaries)} site summaries")
        answer = in_process([SiteState.load(s) for s in state])
    else:
        answer = stored_answers(exchange, [s.get("site") for s in summaries])
    result = federate(summaries, proto, answer)
    if result.results is None:
        path = write_request(exchange, result.pending, proto.sha256())
        out.print(f"waiting for the sites: send {path} to every site, put each 'site answer' output in "
                  f"{exchange / 'answers'}, then rerun this command", markup=False)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "federated.json").write_text(json.dumps(result.results, indent=1, allow_nan=False), encoding="utf-8")
    rounds = {k: v["theta_rounds"] for k, v in result.results["outcomes"].items()}
    out.print(f"pooled study of {len(summaries)} sites: {out_dir / 'federated.json'} (theta rounds: {rounds})",
              markup=False)
