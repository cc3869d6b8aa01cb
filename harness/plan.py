"""registry → plan: which backbone × head × dataset × subject jobs make sense, and why others don't.

Compatibility is decided from the plugins' declared ``consumes``/``produces``,
never from their names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from harness import specs
from harness.contracts import Backbone, Dataset
from harness.errors import HarnessError
from harness.factory import Factory
from harness.precision import resolve_precision
from harness.registry import Registry
from harness.specs import RegistryEntry


@dataclass(frozen=True)
class Job:
    backbone: RegistryEntry
    head: RegistryEntry
    dataset: RegistryEntry
    subject: str
    metrics: tuple[RegistryEntry, ...]
    job_id: str
    config: dict

    @property
    def label(self) -> str:
        return f"{self.backbone.name} × {self.head.name} × {self.dataset.name}/{self.subject}"


@dataclass(frozen=True)
class Skip:
    what: str
    reason: str


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def require_jobs(self) -> None:
        """A run with nothing to run is bad input (exit 2), not a success with ``0 done``: typically
        every named dataset is skipped because the data root is not set or incomplete."""
        if self.jobs:
            return
        why = "; ".join(f"{s.what}: {s.reason}" for s in self.skipped[:3]) or "the selection is empty"
        more = f" (and {len(self.skipped) - 3} more skipped)" if len(self.skipped) > 3 else ""
        raise HarnessError(f"nothing to run: {why}{more}")


def entry_config(entry: RegistryEntry, factory: Factory) -> dict:
    spec = factory.catalog.spec(entry.kind, entry.plugin)
    args = spec.args(**entry.args).model_dump(mode="json")
    return {"plugin": entry.plugin, "version": spec.version, "args": args, "random_init": entry.random_init, "meta": entry.meta}


def job_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _select(entries: list[RegistryEntry], names: list[str] | None, kind: str, everything: bool = False) -> list[RegistryEntry]:
    if not names:
        return [e for e in entries if e.in_all or everything]
    by = {e.name: e for e in entries}
    unknown = [n for n in names if n not in by]
    if unknown:
        raise HarnessError(f"unknown {kind} entr{'y' if len(unknown) == 1 else 'ies'} {unknown}; known: {sorted(by)}")
    return [by[n] for n in names]


def unavailable(factory: Factory, entry: RegistryEntry, kind: type[Backbone] | type[Dataset]) -> str | None:
    """Why an entry cannot run here (weights or data missing, bad arguments), or None when it can.

    Backbones and datasets come from the factory's per-name cache, so planning builds each once
    and the runner reuses the same instances (and their hashed stimuli)."""
    try:
        obj = factory.backbone(entry.name) if kind is Backbone else factory.dataset(entry.name)
        return obj.unavailable_reason()
    except HarnessError as exc:
        return str(exc)


def make_plan(
    factory: Factory,
    backbones: list[str] | None = None,
    heads: list[str] | None = None,
    datasets: list[str] | None = None,
    metrics: list[str] | None = None,
    everything: bool = False,
) -> Plan:
    """``everything`` also takes entries marked ``in_all: false`` (ablations, big models, extra sessions)."""
    reg, cat = factory.registry, factory.catalog
    plan = Plan()
    bbs = _select(reg.of_kind("backbone"), backbones, "backbone", everything)
    hds = _select(reg.of_kind("head"), heads, "head", everything)
    dss = _select(reg.of_kind("dataset"), datasets, "dataset", everything)
    mts = _select(reg.of_kind("metric"), metrics, "metric", everything)

    ok_bbs: list[RegistryEntry] = []
    precision_of: dict[str, str] = {}  # the precision extraction will use (part of the job key)
    for e in bbs:
        reason = unavailable(factory, e, Backbone)
        if reason:
            plan.skipped.append(Skip(f"backbone {e.name}", reason))
            factory.release(e.name)  # a skipped backbone holds nothing for the runner
        else:
            ok_bbs.append(e)
            precision_of[e.name] = resolve_precision(factory.extraction.precision, factory.backbone(e.name),
                                                     factory.device)

    for d in dss:
        n_jobs = len(plan.jobs)
        reason = unavailable(factory, d, Dataset)
        if reason:
            plan.skipped.append(Skip(f"dataset {d.name}", reason))
            factory.release_dataset(d.name)
            continue
        ds = factory.dataset(d.name)
        try:
            subjects = ds.subjects()
            digest = ds.digest()
        except HarnessError as exc:
            plan.skipped.append(Skip(f"dataset {d.name}", str(exc)))
            factory.release_dataset(d.name)
            continue
        kind = ds.target_kind
        for h in hds:
            hspec = cat.spec("head", h.plugin)
            if kind not in hspec.consumes:
                plan.skipped.append(Skip(f"{h.name} × {d.name}", f"head takes {sorted(hspec.consumes & set(specs.TARGET_KINDS))}, dataset gives {kind}"))
                continue
            available = hspec.produces | {kind}
            job_metrics = tuple(m for m in mts if cat.spec("metric", m.plugin).consumes <= available)
            if not job_metrics:
                plan.skipped.append(Skip(f"{h.name} × {d.name}", "no metric accepts this head's outputs"))
                continue
            for b in ok_bbs:
                extraction = {**vars(factory.extraction), "precision": precision_of[b.name]}
                for subj in subjects:
                    config = {
                        "backbone": entry_config(b, factory),
                        "head": entry_config(h, factory),
                        "dataset": {**entry_config(d, factory), "digest": digest},
                        "subject": subj,
                        "metrics": {m.name: entry_config(m, factory) for m in job_metrics},
                        "seed": factory.seed,
                        "extraction": extraction,
                    }
                    plan.jobs.append(Job(b, h, d, subj, job_metrics, job_hash(config), config))
        if len(plan.jobs) == n_jobs:  # kept for the runner only when it will use it
            factory.release_dataset(d.name)
    return plan


def derived_selection(registry: Registry, tasks: list[str], bases: list[str] | None = None) -> tuple[list[str], list[Skip]]:
    """Backbones for ``harness run --finetune TASK``: each base followed by the entries derived from it for ``tasks``.

    Derived entries are plain registry data (``parent`` names the base, ``meta.task`` the
    task), whoever registers them, so the core needs no fine-tuning code to pair them.
    ``bases`` defaults to the ``--all`` backbones that are not themselves derived.
    """
    backbones = registry.of_kind("backbone")
    derived = [e for e in backbones if e.parent is not None and e.meta.get("task") in tasks]
    base_entries = [registry.get(n, "backbone") for n in bases] if bases else [
        e for e in backbones if e.in_all and e.parent is None]
    names: list[str] = []
    skips: list[Skip] = []
    for b in base_entries:
        children = sorted(e.name for e in derived if e.parent == b.name)
        if children:
            names += [b.name, *children]
        else:
            skips.append(Skip(f"backbone {b.name}", f"no derived backbone for task {'/'.join(tasks)}; "
                                                    f"create one with `harness finetune -b {b.name} --task {tasks[0]}`"))
    if not names:
        have = sorted({str(e.meta.get("task")) for e in backbones if e.parent is not None and "task" in e.meta})
        raise HarnessError(f"no derived backbones for task(s) {tasks} in the registry (derived tasks there: "
                           f"{', '.join(have) or 'none'}); run `harness finetune` first")
    return names, skips
