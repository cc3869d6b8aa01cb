"""``harness finetune``: adapt registered backbones to a labelled task and register the results as derived backbones.

Also the helpers ``harness run --finetune TASK`` uses to pick base/derived pairs and
print their ``finetune_deltas``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from harness.cli import _factory, _split, app, state
from harness.console import console, err_console, text_column
from harness.errors import HarnessError

_RECIPE = "Recipe (defaults: FactorTopy §4.4)"


@app.command("finetune")
def finetune_cmd(
    backbone: Annotated[list[str] | None, typer.Option("-b", "--backbone", help="Registered backbone(s) to fine-tune.")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Task id (see --list) or an ImageFolder directory.")] = None,
    task_arg: Annotated[list[str] | None, typer.Option("--task-arg", help="Task argument KEY=VALUE (repeatable).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps [3000].", rich_help_panel=_RECIPE)] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate [3e-5].", rich_help_panel=_RECIPE)] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay [0.01].", rich_help_panel=_RECIPE)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step [4].", rich_help_panel=_RECIPE)] = None,
    n_per_class: Annotated[int | None, typer.Option(help="Training images per class [50].", rich_help_panel=_RECIPE)] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Per-class validation hold-out [0.3].", rich_help_panel=_RECIPE)] = None,
    max_val_per_class: Annotated[int | None, typer.Option(help="Cap on validation images per class [50].", rich_help_panel=_RECIPE)] = None,
    seed: Annotated[int | None, typer.Option(help="Split, batch order and init seed [0].", rich_help_panel=_RECIPE)] = None,
    layer: Annotated[str | None, typer.Option(help="Layer whose global token feeds the classifier [deepest].", rich_help_panel=_RECIPE)] = None,
    batchnorm: Annotated[str | None, typer.Option(help="frozen (eval-mode BN statistics) or train [frozen].", rich_help_panel=_RECIPE)] = None,
    head_init: Annotated[str | None, typer.Option(help="probe (start from the linear probe) or zeros [probe].", rich_help_panel=_RECIPE)] = None,
    probe_c: Annotated[float | None, typer.Option(help="Inverse L2 strength of the linear probe [1.0].", rich_help_panel=_RECIPE)] = None,
    image_size: Annotated[int | None, typer.Option(help="Train at this crop size instead of the backbone's.", rich_help_panel=_RECIPE)] = None,
    eval_every: Annotated[int | None, typer.Option(help="Validate every N steps (0: start and end) [0].", rich_help_panel=_RECIPE)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Train again even if this fine-tune is stored.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List tasks and derived backbones, then exit.")] = False,
) -> None:
    """Fine-tune backbone(s) on a labelled task; the result is a derived backbone every head can use."""
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from harness.extract import resolve_device
    from harness.finetune.pipeline import finetune_backbone
    from harness.finetune.recipe import FinetuneConfig
    from harness.finetune.records import record_finetunes
    from harness.finetune.tasks import make_task, parse_task_args
    from harness.store import Store

    f = _factory()
    if list_:
        _list(f)
        return
    if not backbone or not task:
        raise HarnessError("say what to fine-tune: -b BACKBONE --task TASK (see `harness finetune --list`)")
    overrides = dict(steps=steps, lr=lr, weight_decay=weight_decay, batch_size=batch_size, n_per_class=n_per_class,
                     val_fraction=val_fraction, max_val_per_class=max_val_per_class, seed=seed, layer=layer,
                     batchnorm=batchnorm, head_init=head_init, probe_c=probe_c, image_size=image_size,
                     eval_every=eval_every)
    try:
        cfg = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise HarnessError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    t = make_task(task, f.catalog.manager, f.settings, parse_task_args(task_arg or []))
    dev = resolve_device(device)
    names = _split(backbone) or []
    for name in names:  # every name checked before the first (long) fine-tune starts
        f.registry.get(name, "backbone")
    reports = []
    for name in names:
        with Progress(text_column("{task.description}"), BarColumn(), text_column("{task.completed}/{task.total}"),
                      text_column("loss {task.fields[loss]}"), TimeElapsedColumn(), console=err_console,
                      disable=state.quiet) as prog:
            bar = prog.add_task(f"finetune {name} on {t.id} ({dev})", total=cfg.steps, loss="-")

            def on_step(step: int, total: int, loss: float, bar: int = bar) -> None:
                prog.update(bar, completed=step, loss=f"{loss:.3f}")

            reports.append(finetune_backbone(f, name, t, cfg, device=dev, progress=on_step, force=force))
    store = Store(f.settings.db)
    record_finetunes(store, [r.manifest for r in reports])
    table = Table(title=f"fine-tuned on {t.id} → {f.settings.db}")
    for col in ("derived backbone", "parent", "steps", "n_train", "n_val", "probe acc", "fine-tuned acc", "wall s", "status"):
        table.add_column(col)
    for r in reports:
        m, res = r.manifest, r.manifest.results
        table.add_row(m.name, m.parent["name"], str(m.data["recipe"]["steps"]), str(res["n_train"]), str(res["n_val"]),
                      f"{res['probe_accuracy']:.3f}", f"{res['val_accuracy']:.3f}", f"{res['wall_s']:.0f}",
                      "reused" if r.reused else "new")
    console.print(table)
    for r in reports:
        console.print(f"{r.manifest.name}: {r.manifest.path}", highlight=False, soft_wrap=True)
    if not state.quiet:
        console.print(f"cross them with the heads: harness run --all --finetune {t.id}")


def _list(f) -> None:
    from harness.finetune.derived import DerivedStore
    from harness.finetune.tasks import task_classes

    t = Table(title="fine-tune tasks (--task)")
    for col in ("task", "level", "status", "summary"):
        t.add_column(col)
    for tid, cls in sorted(task_classes(f.catalog.manager).items()):
        status = "give a folder path" if tid == "imagefolder" else "ok"
        if tid != "imagefolder":
            try:
                status = cls(cls.spec.args(), f.settings).unavailable_reason() or "ok"
            except (ValidationError, HarnessError) as exc:
                status = str(exc).splitlines()[0]
        t.add_row(tid, cls.spec.level, status, cls.spec.summary)
    console.print(t)
    d = Table(title=f"derived backbones ({DerivedStore(f.settings.home).root})")
    for col in ("name", "parent", "task", "steps", "probe acc", "fine-tuned acc", "created"):
        d.add_column(col)
    for m in DerivedStore(f.settings.home).manifests():
        r = m.results
        d.add_row(m.name, m.parent["name"], m.task["id"], str(m.data["recipe"]["steps"]), f"{r['probe_accuracy']:.3f}",
                  f"{r['val_accuracy']:.3f}", str(m.data.get("created", "")))
    console.print(d)


def select_finetuned(factory, tasks: list[str], bases: list[str] | None) -> tuple[list[str], list]:
    """For ``harness run --finetune``: base backbones and their derived ones, recorded in ``finetunes``."""
    from harness.finetune.derived import DerivedStore
    from harness.finetune.pipeline import finetune_selection
    from harness.finetune.records import record_finetunes
    from harness.store import Store

    names, skips = finetune_selection(factory, tasks, bases)
    chosen = set(names)
    record_finetunes(Store(factory.settings.db), [m for m in DerivedStore(factory.settings.home).manifests() if m.name in chosen])
    return names, skips


def show_deltas(db, tasks: list[str]) -> None:
    """The derived name carries base and task (``<base>.ft-<task>-<hash>``), so those columns are left out here."""
    from harness.store import Store

    marks = ", ".join("?" for _ in tasks)
    df = Store(db).query(
        "SELECT derived, dataset, head, metric, roi, base_raw AS base, derived_raw AS ft_score, delta_raw AS delta, "
        "layer_shift AS com_shift, task_probe_acc AS probe_acc, task_finetuned_acc AS ft_acc "
        f"FROM finetune_deltas WHERE task IN ({marks}) ORDER BY task, dataset, head, metric, roi, base, derived", tasks)
    t = Table(title="finetune_deltas (derived − base; com_shift: change of the ROI's layer centre of mass, depth 0…1)")
    for c in df.columns:
        t.add_column(str(c), no_wrap=c == "derived", min_width=len(max(df["derived"], key=len, default="")) if c == "derived" else None)
    for row in df.itertuples(index=False):
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(t)

