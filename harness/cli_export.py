"""``harness export``: a job's predicted RDMs as an Algonauts 2019 challenge submission (.mat) or .npz."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _settings, app, console, state
from harness.errors import HarnessError


@app.command()
def export(
    backbone: Annotated[str, typer.Option("--backbone", "-b")],
    head: Annotated[str, typer.Option("--head", "-H")],
    dataset: Annotated[str, typer.Option("--dataset", "-d")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .mat (challenge submission) or .npz")],
    set_prefix: Annotated[str, typer.Option("--set", help="Joined datasets: the set whose ROIs go in the .mat "
                                                          "(e.g. 78 for ROIs 78/EVC, 78/IT)")] = "",
) -> None:
    """Write a finished RDM job's model RDMs: .mat with EVC_RDMs/IT_RDMs (N×N, the devkit's layout) or .npz."""
    from harness import export as ex
    from harness.store import Store

    s = _settings()
    job = ex.find_job(Store(s.db), s.home, backbone, head, dataset)
    if out.suffix == ".mat":
        rdms = ex.submission(job.stored, f"{set_prefix}/" if set_prefix else "")
        ex.write_mat(out, rdms)
        what = ", ".join(f"{k} {v.shape[0]}×{v.shape[1]}" for k, v in rdms.items())
    elif out.suffix == ".npz":
        ex.write_npz(out, job)
        what = ", ".join(job.stored.rdms)
    else:
        raise HarnessError(f"{out}: export writes .mat or .npz")
    if not state.quiet:
        console.print(f"job {job.job_id}: {what} → {out}")
