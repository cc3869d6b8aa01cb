"""The Python API: what the CLI does, from a notebook cell, on the same registry, plan, cache and store.

::

    import harness
    p = harness.plan(backbones=["efficientnet_lite0"], heads=["ridge"], datasets=["synthetic"])
    harness.run(p)
    harness.leaderboard()          # the first screen: top models per dataset × ROI by the primary score

Settings resolve exactly as on the command line: arguments (``harness.settings(db=…)``, like the CLI's
global options) → environment (``HARNESS_HOME``, ``HARNESS_DATA_ROOT``, ``HARNESS_DB``, ``HARNESS_REGISTRY``,
``HARNESS_DEVICE``) → config file → defaults, re-read on every call. Plugin classes and entries registered with
:func:`register` join the zoo for this process only, and every row they produce is labelled ``in_process``.
Heavy libraries (torch, the plugins) load on first use, not on ``import harness``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import board
from harness.errors import HarnessError
from harness.session import SESSION, entries_from
from harness.tokenset import TokenSet

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from harness.contracts import HeadOutput, Plugin, Stimuli
    from harness.factory import Factory
    from harness.plan import Job, Skip
    from harness.registry import Registry
    from harness.settings import Settings
    from harness.specs import PluginKind, RegistryEntry

__all__ = ["Plan", "RunSummary", "TokenSet", "fit", "leaderboard", "plan", "register", "registry", "run",
           "settings", "sql", "tokens", "unregister"]

Names = str | Sequence[str] | None


# ----------------------------------------------------------------------------- settings and wiring
#: settings given to :func:`settings` in this session (the CLI's global options, for a Python process)
_OVERRIDES: dict[str, Any] = {}
_SETTINGS = ("home", "data_root", "db", "registry", "device")


def settings(**overrides: str | Path | None) -> Settings:
    """The resolved settings. Keyword arguments (``home``, ``data_root``, ``db``, ``registry``, ``device``) hold
    for the rest of the session, like the CLI's global options, and beat the environment and the config file;
    ``None`` drops one again."""
    from harness.settings import load_settings

    unknown = set(overrides) - set(_SETTINGS)
    if unknown:
        raise HarnessError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(_SETTINGS)}")
    for key, value in overrides.items():
        if value is None:
            _OVERRIDES.pop(key, None)
        else:
            _OVERRIDES[key] = value if key == "device" else Path(value).expanduser().resolve()
    return load_settings().with_overrides(**_OVERRIDES)


def _open(device: str = "cpu", random_init: bool = False, **extraction: Any) -> Factory:
    """Catalog + registry + settings → Factory, with this session's in-process plugins and entries."""
    from harness.cli import _registry_path  # TODO(#11): Factory.open(settings, …) replaces this wiring
    from harness.factory import ExtractionOptions, Factory
    from harness.plugins import default_catalog
    from harness.registry import Registry, load_registry

    s = settings()
    catalog = SESSION.catalog(default_catalog())
    reg = SESSION.registry(load_registry(catalog, _registry_path(s)))
    if random_init:
        reg = Registry(entries={n: (e.model_copy(update={"random_init": True}) if e.kind == "backbone" else e)
                                for n, e in reg.entries.items()})
    opts = ExtractionOptions(**{k: v for k, v in extraction.items() if v is not None})
    return Factory(catalog=catalog, registry=reg, settings=s, device=device, extraction=opts)


def _device(device: str | None) -> str:
    from harness.extract import resolve_device

    return resolve_device(device or settings().device)


def _names(values: Names) -> list[str] | None:
    """``"a,b"``, ``["a", "b"]`` or ``["a,b"]`` (as the CLI's repeated/comma options)."""
    if not values:
        return None
    items = [values] if isinstance(values, str) else list(values)
    return [v for item in items for v in str(item).split(",") if v] or None


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Zoo:
    """The registry as this session sees it: files, plugin fragments and in-process entries."""

    entries: Mapping[str, RegistryEntry]
    plugins: Mapping[tuple[str, str], type[Plugin]]

    def __iter__(self) -> Iterator[RegistryEntry]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, name: str) -> RegistryEntry:
        if name not in self.entries:
            raise KeyError(f"no registry entry named {name!r}")
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def of_kind(self, kind: PluginKind) -> list[RegistryEntry]:
        return [e for e in self.entries.values() if e.kind == kind]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([
            {"kind": e.kind, "name": e.name, "plugin": e.plugin, "random_init": e.random_init, "in_all": e.in_all,
             "tags": ",".join(e.tags), "args": e.args, "source": e.source}
            for e in sorted(self.entries.values(), key=lambda x: (x.kind, x.name))])

    def plugins_frame(self) -> pd.DataFrame:
        import pandas as pd

        from harness.plugins import missing_requirements

        return pd.DataFrame([
            {"kind": k, "plugin": pid, "version": c.spec.version, "summary": c.spec.summary,
             "consumes": sorted(c.spec.consumes), "produces": sorted(c.spec.produces),
             "missing": missing_requirements(c.spec)}
            for (k, pid), c in sorted(self.plugins.items())])

    def __repr__(self) -> str:
        counts = {k: len(self.of_kind(k)) for k in ("backbone", "head", "metric", "dataset")}
        return f"Zoo({', '.join(f'{n} {k}s' for k, n in counts.items())}; .to_frame() lists them)"

    def _repr_html_(self) -> str:
        return self.to_frame().drop(columns=["args"])._repr_html_()


def registry() -> Zoo:
    """Installed plugin classes and every registry entry (validated), in-process ones included."""
    f = _open()
    return Zoo(entries=dict(f.registry.entries), plugins=dict(f.catalog.classes))


def register(obj: type[Plugin] | RegistryEntry | Mapping[str, Any] | str, /, *, kind: PluginKind | None = None,
             **fields: Any) -> list[RegistryEntry]:
    """Add to the zoo for this session, no pip install needed; every row it produces is labelled ``in_process``.

    * a plugin class (a Backbone/Head/Metric/Dataset subclass with a ``spec``): registered, plus an entry named
      ``name`` (default: the plugin id) with ``args``, ``random_init``, ``in_all``, ``meta``, ``tags``;
    * a :class:`~harness.specs.RegistryEntry`, or a registry fragment ``{"heads": {"ridge_a": {...}}}``;
    * an entry name with ``kind=`` and ``plugin=`` (and ``args=`` …), e.g.
      ``register("ridge_global", kind="head", plugin="ridge", args={"features": "global"})``.

    Returns the entries added.
    """
    from harness.contracts import Plugin
    from harness.plugins import default_catalog

    installed = default_catalog()
    if isinstance(obj, type) and issubclass(obj, Plugin):
        SESSION.add_plugin(obj, installed)
        name = str(fields.pop("name", obj.spec.id))
        obj_fields: Mapping[str, Any] = {"plugin": obj.spec.id}
        return SESSION.add_entries(entries_from(obj_fields, obj.spec.kind, name, fields), SESSION.catalog(installed))
    if isinstance(obj, str):
        return SESSION.add_entries(entries_from({}, kind, obj, fields), SESSION.catalog(installed))
    if isinstance(obj, type):
        raise HarnessError(f"{obj.__qualname__} is not a harness plugin class (subclass Backbone, Head, Metric or "
                           "Dataset from harness.contracts and give it a PluginSpec 'spec')")
    return SESSION.add_entries(entries_from(obj, kind, None, fields), SESSION.catalog(installed))


def unregister(name: str | None = None) -> None:
    """Forget an in-process entry, or (no name) every in-process plugin class and entry."""
    SESSION.remove(name)


# ----------------------------------------------------------------------------- plan
@dataclass
class Plan:
    """The jobs a run would execute (with which are already done) and what is skipped, with the reason."""

    jobs: list[Job]
    skipped: list[Skip]
    done: set[str]
    device: str
    factory: Factory = field(repr=False)
    #: the arguments that made it: ``run`` re-plans with them when asked for another device
    request: dict[str, Any] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def todo(self) -> list[Job]:
        return [j for j in self.jobs if j.job_id not in self.done]

    def to_frame(self) -> pd.DataFrame:
        """One row per job: backbone, head, dataset, subject, metrics, status (done / to run), in_process, job_id."""
        import pandas as pd

        cols = ["backbone", "head", "dataset", "subject", "metrics", "status", "in_process", "job_id"]
        return pd.DataFrame([
            {"backbone": j.backbone.name, "head": j.head.name, "dataset": j.dataset.name, "subject": j.subject,
             "metrics": ",".join(m.name for m in j.metrics), "status": "done" if j.job_id in self.done else "to run",
             "in_process": ",".join(j.config.get("in_process", [])), "job_id": j.job_id}
            for j in self.jobs], columns=cols)

    def skipped_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{"what": s.what, "reason": s.reason} for s in self.skipped], columns=["what", "reason"])

    def _headline(self) -> str:
        return (f"plan on {self.device}: {len(self.jobs)} jobs ({len(self.jobs) - len(self.todo)} done, "
                f"{len(self.todo)} to run), {len(self.skipped)} skipped")

    def __str__(self) -> str:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_colwidth", None, "display.max_rows", 500):
            parts = [self._headline(), self.to_frame().drop(columns=["job_id"]).to_string(index=False)]
            if self.skipped:
                parts += ["skipped:", self.skipped_frame().to_string(index=False)]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<Plan: {self._headline()}>"

    def _repr_html_(self) -> str:
        html = f"<p>{self._headline()}</p>" + self.to_frame().drop(columns=["job_id"])._repr_html_()
        if self.skipped:
            html += "<p>skipped</p>" + self.skipped_frame()._repr_html_()
        return html


def plan(backbones: Names = None, heads: Names = None, datasets: Names = None, metrics: Names = None, *,
         all: bool = False, everything: bool = False, random_init: bool = False, device: str | None = None,
         precision: str | None = None, batch_size: int | None = None) -> Plan:
    """Cross backbones × heads × datasets × subjects, as ``harness plan``: name a subset, or ``all=True``
    (every entry in ``run --all``), or ``everything=True`` (also entries marked ``in_all: false``).

    ``device`` (default: the ``device`` setting, ``auto`` = CUDA when present) matters for job ids: extraction
    precision ``auto`` resolves per device."""
    from harness.plan import make_plan
    from harness.store import Store

    request = {"backbones": _names(backbones), "heads": _names(heads), "datasets": _names(datasets),
               "metrics": _names(metrics), "all": all, "everything": everything, "random_init": random_init,
               "precision": precision, "batch_size": batch_size}
    if not (all or everything) and not (request["backbones"] or request["heads"] or request["datasets"]):
        raise HarnessError("say what to plan: all=True, everything=True, or a subset of backbones/heads/datasets")
    dev = _device(device)
    f = _open(device=dev, random_init=random_init, precision=precision, batch_size=batch_size)
    core = SESSION.label(make_plan(f, backbones=request["backbones"], heads=request["heads"],
                                   datasets=request["datasets"], metrics=request["metrics"], everything=everything))
    done = Store(f.settings.db).finished_jobs()
    return Plan(jobs=core.jobs, skipped=core.skipped, done=done, device=dev, factory=f, request=request)


# ----------------------------------------------------------------------------- run
@dataclass
class RunSummary:
    """What a run did: jobs done now, already done before, failed (label, one-line error), skipped."""

    run_id: str
    done: int
    cached: int
    failed: list[tuple[str, str]]
    skipped: list[Skip]
    db: Path
    device: str

    @property
    def ok(self) -> bool:
        return not self.failed

    def leaderboard(self, view: str | None = None, **filters: Any) -> pd.DataFrame:
        return leaderboard(view, **filters)

    def __repr__(self) -> str:
        fails = "".join(f"\n  failed {label}: {err}" for label, err in self.failed)
        return (f"<run {self.run_id} on {self.device}: {self.done} done, {self.cached} already done, "
                f"{len(self.failed)} failed, {len(self.skipped)} skipped → {self.db}>{fails}")


#: executors ``run`` accepts (the executor seam belongs to issue 14; today the runner's local loop)
EXECUTORS = ("local",)


def run(plan_or_same_args: Plan | None = None, device: str | None = None, executor: str = "local", *,
        progress: bool = True, **plan_args: Any) -> RunSummary:
    """Run a :class:`Plan` (or the arguments :func:`plan` takes): finished jobs are skipped, failed ones
    retried, each job committed on its own, exactly as ``harness run``. A progress bar (tqdm.auto: a widget in
    Jupyter, text in a terminal) follows the jobs and the current extraction or fit."""
    from harness.runner import Runner
    from harness.store import Store

    if executor not in EXECUTORS:
        raise HarnessError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if plan_or_same_args is None:
        p = plan(device=device, **plan_args)
    elif isinstance(plan_or_same_args, Plan):
        if plan_args:
            raise HarnessError(f"pass a Plan or plan arguments, not both (got {sorted(plan_args)})")
        p = plan_or_same_args
        dev = _device(device) if device is not None else p.device
        if dev != p.device:  # precision `auto` resolves per device, and so do job ids: plan again
            p = plan(device=dev, **p.request)
    else:
        raise HarnessError(f"run() takes a harness.Plan or plan arguments, not {type(plan_or_same_args).__name__}")
    f = p.factory
    store = Store(f.settings.db)
    from harness.plan import Plan as CorePlan

    with _Bars(enabled=progress, total=len(p.jobs), device=p.device) as bars:
        f.progress = bars.step
        try:
            core = Runner(f, store, progress=bars.job).run(CorePlan(jobs=p.jobs, skipped=p.skipped),
                                                           argv="harness.run() (Python API)")
        finally:
            f.progress = None
    return RunSummary(run_id=core.run_id, done=core.done, cached=core.cached, failed=list(core.failed),
                      skipped=list(p.skipped), db=f.settings.db, device=p.device)


class _Bars:
    """Two tqdm.auto bars: jobs overall, and the current extraction / fit (percent)."""

    def __init__(self, enabled: bool, total: int, device: str) -> None:
        self.enabled, self.total, self.device = enabled, total, device
        self.jobs: Any = None
        self.inner: Any = None
        self.label = ""

    def __enter__(self) -> _Bars:
        if self.enabled:
            from tqdm.auto import tqdm

            self.jobs = tqdm(total=self.total, desc=f"jobs on {self.device}", unit="job", position=0)
            self.inner = tqdm(total=100, desc="", position=1, leave=False, bar_format="{desc} {percentage:3.0f}%|{bar}|")
        return self

    def job(self, label: str, done: int, total: int) -> None:
        if self.jobs is None:
            return
        if done:
            self.jobs.update(1)
        else:
            self.jobs.set_postfix_str(label, refresh=True)

    def step(self, label: str, done: int, total: int) -> None:
        if self.inner is None or not total:
            return
        if label != self.label:
            self.label = label
            self.inner.set_description_str(label, refresh=False)
        self.inner.n = round(100 * done / total)
        self.inner.refresh()

    def __exit__(self, *exc: object) -> None:
        for bar in (self.inner, self.jobs):
            if bar is not None:
                bar.close()


# ----------------------------------------------------------------------------- results
def _store() -> Any:
    from harness.store import Store

    return Store(settings().db)


def leaderboard(view: str | None = None, *, top: int = board.DEFAULT_TOP, wide: bool = False,
                **filters: Any) -> pd.DataFrame:
    """The same table ``harness leaderboard`` prints, as a DataFrame.

    Default: the first screen (view ``primary_scores``): per dataset × ROI the top ``top`` models by the dataset's
    primary score with the random-init control beside each. ``metric="hierarchy.depth"`` (or any metric) shows
    that metric's rows of the ``leaderboard`` view; ``view=`` any view in ``leaderboards/``. Other keywords
    filter on columns (``dataset="cichy92", roi=["EVC", "IT"]``). ``wide=True`` keeps every column."""
    return board.query_board(_store(), view, top=top, wide=wide, filters=filters)


def sql(query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """A read-only query on the results database, with the guarantees of ``harness sql`` (same reader)."""
    return _store().query(query, list(params) if params is not None else None)


# ----------------------------------------------------------------------------- tokens and heads
def _stimuli(f: Factory, what: Stimuli | str | Path | Sequence[str | Path] | np.ndarray) -> Stimuli:
    import numpy as np

    from harness.contracts import Stimuli

    if isinstance(what, Stimuli):
        return what
    if isinstance(what, str) and what in f.registry.entries:
        return f.dataset(f.registry.get(what, "dataset").name).stimuli()
    if isinstance(what, np.ndarray):
        return Stimuli.from_array(what)
    if isinstance(what, (str, Path)):
        path = Path(what)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp"})
            if not files:
                raise HarnessError(f"{path}: no images (.jpg/.jpeg/.png/.bmp/.webp) in this folder")
            return Stimuli.from_files(files)
        raise HarnessError(f"{what!r} is neither a dataset entry nor a folder of images")
    return Stimuli.from_files([Path(p) for p in what])


def tokens(backbone: str, stimuli_or_dataset: Stimuli | str | Path | Sequence[str | Path] | np.ndarray,
           layers: Sequence[str] | None = None, *, device: str | None = None, precision: str | None = None,
           batch_size: int | None = None, random_init: bool = False) -> TokenSet:
    """``backbone``'s tokens on a dataset entry's stimuli (its name), a folder or list of image files, an
    ``N×H×W×3`` uint8 array, or a :class:`~harness.contracts.Stimuli`: from the token cache, extracted on a
    miss with the same key a run uses (so a later run reuses them). ``layers`` restricts the view."""
    dev = _device(device)
    f = _open(device=dev, random_init=random_init, precision=precision, batch_size=batch_size)
    bb = f.registry.get(backbone, "backbone")
    stim = _stimuli(f, stimuli_or_dataset)
    store = f.tokens_for(bb.name, stim)
    chosen = tuple(layers) if layers is not None else store.layers
    unknown = [name for name in chosen if name not in store.layers]
    if unknown:
        raise HarnessError(f"backbone {bb.name!r} has no layer(s) {unknown}; layers: {', '.join(store.layers)}")
    return TokenSet(backbone=bb.name, stimuli=stim, store=store, selected=chosen)


def fit(head: str | type[Plugin] | RegistryEntry, tokens: TokenSet, dataset: str, subject: str | None = None, *,
        args: Mapping[str, Any] | None = None, device: str | None = None, seed: int = 0) -> HeadOutput:
    """Fit a head on cached tokens and one subject's targets; returns its :class:`~harness.contracts.HeadOutput`
    (test-set predictions or model RDMs, layer weights, selections), without writing to the database.

    ``head`` is a registry entry name, a RegistryEntry, or a Head class (built with ``args``: try a head in a
    notebook before making it a plugin). ``subject`` defaults to the dataset's first."""
    from harness.contracts import Head, HeadInput, Plugin
    from harness.specs import LIVE_BACKBONE, RegistryEntry

    dev = _device(device)
    f = _open(device=dev)
    if isinstance(head, type) and issubclass(head, Plugin):  # a class not (yet) registered: build it directly
        f.catalog = dataclasses.replace(f.catalog, classes={**f.catalog.classes, (head.spec.kind, head.spec.id): head})
        entry = RegistryEntry(name=head.spec.id, kind=head.spec.kind, plugin=head.spec.id, args=dict(args or {}),
                              source="harness.fit")
    elif isinstance(head, RegistryEntry):
        entry = head
    else:
        entry = f.registry.get(head, "head")
        if args:
            entry = entry.model_copy(update={"args": {**entry.args, **args}})
    f.seed = seed
    built = f.build(entry)
    if not isinstance(built, Head):
        raise HarnessError(f"{entry.name!r} is a {entry.kind}, not a head")
    ds = f.dataset(f.registry.get(dataset, "dataset").name)
    stim = ds.stimuli()
    if stim.digest != tokens.stimuli.digest:
        raise HarnessError(f"tokens {tokens!r} were extracted on other stimuli than dataset {dataset!r}'s; "
                           f"use harness.tokens({tokens.backbone!r}, {dataset!r})")
    subjects = ds.subjects()
    subj = subject if subject is not None else subjects[0]
    if subj not in subjects:
        raise HarnessError(f"dataset {dataset!r} has no subject {subj!r}; subjects: {', '.join(subjects)}")
    targets = ds.targets(subj)
    targets.validate(len(stim), f"dataset {dataset} subject {subj}")
    live = f.backbone(tokens.backbone) if LIVE_BACKBONE in built.spec.consumes else None
    return built.fit_predict(HeadInput(targets=targets, stimuli=stim, tokens=tokens.for_head(), backbone=live,
                                       device=dev, seed=seed))
