"""Registry entry + task + recipe → a saved derived backbone.

A fine-tune is keyed on (parent weights digest, task data digest, recipe digest):
asking for the same one again returns the stored derived backbone instead of
training again, so ``harness finetune`` is as resumable as ``harness run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.contracts import Backbone, Task
from harness.errors import HarnessError
from harness_finetune.derived_store import DerivedManifest, DerivedStore, finetune_key
from harness_finetune.recipe import FinetuneConfig
from harness_finetune.training import StepCallback, finetune

if TYPE_CHECKING:
    from harness.factory import Factory


@dataclass(frozen=True)
class FinetuneReport:
    manifest: DerivedManifest
    #: True when an identical fine-tune was already stored and nothing was trained
    reused: bool


def finetune_backbone(factory: Factory, backbone: str, task: Task, cfg: FinetuneConfig, device: str = "cpu",
                      progress: StepCallback | None = None, force: bool = False) -> FinetuneReport:
    from harness.kit.hooked import state_dict_digest

    entry = factory.registry.get(backbone, "backbone")
    reason = task.unavailable_reason()
    if reason:
        raise HarnessError(f"task {task.id!r}: {reason}")
    bb = factory.build_as(entry, Backbone)  # a private instance: training changes its weights in place
    reason = bb.unavailable_reason()
    if reason:
        raise HarnessError(reason)
    data = task.load()
    store = DerivedStore(factory.settings.home)
    store.clean_stale()
    parent_digest = bb.weights_digest()
    key = finetune_key(parent_digest, data.digest, cfg.digest())
    existing = store.find(key)
    if existing is not None and not force:
        return FinetuneReport(existing, reused=True)
    out = finetune(bb, data, cfg, device=device, progress=progress)
    net = bb.module()
    if net is None:
        raise HarnessError(f"backbone {backbone!r} ({entry.plugin}) has no torch module to fine-tune")
    digest = state_dict_digest(net)
    spec = factory.catalog.get("backbone", entry.plugin).spec
    manifest = {
        "name": f"{entry.name}.ft-{task.id}-{digest[:8]}",
        "key": key,
        "parent": {"name": entry.name, "plugin": entry.plugin, "plugin_version": spec.version, "args": entry.args,
                   "random_init": entry.random_init, "weights_digest": parent_digest, "meta": entry.meta},
        "task": {"id": task.id, "version": task.spec.version, "level": task.spec.level,
                 "args": task.args.model_dump(mode="json"), "digest": data.digest, "classes": list(data.classes),
                 "n_images": len(data.stimuli)},
        "recipe": cfg.model_dump(mode="json"),
        "recipe_digest": cfg.digest(),
        "layer": out.layer,
        "device": device,
        "results": {"probe_accuracy": out.probe_accuracy, "start_accuracy": out.start_accuracy,
                    "val_accuracy": out.val_accuracy, "n_train": out.n_train, "n_val": out.n_val,
                    "train_counts": out.train_counts, "val_counts": out.val_counts, "curve": out.curve,
                    "wall_s": out.wall_s},
    }
    return FinetuneReport(store.save(digest, out.state_dict, out.classifier, manifest), reused=False)
