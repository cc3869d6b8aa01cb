"""Assemble the report: run every figure module against the database, then write HTML or PNG files."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import harness
from harness.errors import HarnessError
from harness.report import fig_brain, fig_finetune, fig_hierarchy, fig_layers, fig_leaderboard, fig_rdms, fig_stages
from harness.report.figure import Context, Section
from harness.report.outside import Outside
from harness.report.reader import Reader
from harness.store import Store

log = logging.getLogger(__name__)

#: the figures in page order; each module's ``build(Context) -> Section``
FIGURES: tuple[Callable[[Context], Section], ...] = (
    fig_leaderboard.build, fig_hierarchy.build, fig_layers.build, fig_stages.build, fig_finetune.build,
    fig_rdms.build, fig_brain.build,
)

RUNS_SQL = """
SELECT r.run_id, r.started_at, r.status, r.argv, r.harness_version, r.device, count(j.job_id) AS jobs
FROM runs r JOIN jobs j USING (run_id)
GROUP BY ALL ORDER BY r.started_at
"""

#: the registry entries the reported jobs used, as stored with them (digest: sha256 over these rows)
ENTRIES_SQL = """
SELECT name, kind, plugin, plugin_version, random_init, parent, args::VARCHAR AS args, meta::VARCHAR AS meta
FROM entries ORDER BY kind, name
"""


@dataclass
class Report:
    sections: list[Section]
    version: str
    command: str
    created: str
    db: str
    runs: list[dict] = field(default_factory=list)
    registry_digest: str = ""
    header_sql: list[str] = field(default_factory=list)


def build_report(store: Store, command: str, datasets: Sequence[str] = (), backbones: Sequence[str] = (),
                 outside: Outside | None = None) -> Report:
    """Every figure from the database (read-only); ``outside`` lends brain data the database does not hold."""
    reader = Reader(store, datasets=tuple(datasets), backbones=tuple(backbones))
    if not reader.has("leaderboard"):
        raise HarnessError(f"{store.path}: not a harness leaderboard database (no `leaderboard` view)")
    jobs = reader.query("SELECT dataset, backbone FROM jobs WHERE status = 'done'")
    for what, asked, have in (("dataset", datasets, jobs["dataset"]), ("backbone", backbones, jobs["backbone"])):
        missing = sorted(set(asked) - set(have))
        if missing and asked:
            raise HarnessError(f"--{what} {', '.join(missing)}: no finished jobs in {store.path} "
                               f"(it has {', '.join(sorted(set(have))) or 'none'})")
    runs = reader.query(RUNS_SQL, filter_on=())
    entries = reader.query(ENTRIES_SQL, filter_on=())
    digest = hashlib.sha256(entries.to_csv(index=False).encode()).hexdigest()
    header_sql = reader.take_log()
    sections = []
    for fig in FIGURES:
        sec = fig(Context(reader=reader, outside=outside))
        sec.sql = reader.take_log()
        sections.append(sec)
    return Report(sections=sections, version=harness.__version__, command=command, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  db=str(store.path), runs=runs.astype(str).to_dict("records"), registry_digest=digest, header_sql=header_sql)


def write_pngs(report: Report, folder: Path, dpi: int = 200) -> list[Path]:
    """``--format png``: each plot as its own file, named after its figure and label (for papers)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, sec in enumerate(report.sections, 1):
        for plot in sec.plots:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in plot.label)
            path = folder / f"fig{i}_{sec.key}_{safe}.png"
            path.write_bytes(plot.png(dpi=dpi))
            out.append(path)
    return out
