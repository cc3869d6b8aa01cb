"""Labelled image tasks for fine-tuning: the ``harness_tasks`` catalog, the ImageFolder task and the split.

The task contract itself (:class:`harness.contracts.Task`, :class:`harness.specs.TaskSpec`)
is in the core so any plugin can provide tasks through the ``harness_tasks`` hook.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.contracts import LabelledImages, Stimuli, Task
from harness.errors import DataError, HarnessError
from harness.specs import PluginArgs, TaskSpec

if TYPE_CHECKING:
    import pluggy

    from harness.settings import Settings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- ImageFolder
class ImageFolderArgs(PluginArgs):
    root: str


class ImageFolderTask(Task):
    """``root/<class>/<image>`` (torchvision ImageFolder layout): classes are the sorted sub-folder names."""

    spec = TaskSpec(id="imagefolder", version="1", summary="images in root/<class>/*.jpg|png…", args=ImageFolderArgs)
    args: ImageFolderArgs

    @property
    def root(self) -> Path:
        return Path(self.args.root).expanduser()

    @property
    def id(self) -> str:
        name = re.sub(r"[^a-z0-9_\-]+", "_", self.root.resolve().name.lower()).strip("_") or "root"
        return f"folder-{name}"

    def unavailable_reason(self) -> str | None:
        if not self.root.is_dir():
            return f"{self.root}: not a folder (expected root/<class>/<image>)"
        return None

    def load(self) -> LabelledImages:
        reason = self.unavailable_reason()
        if reason:
            raise DataError(reason)
        classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        paths: list[Path] = []
        labels: list[int] = []
        for i, c in enumerate(classes):
            files = sorted(p for p in (self.root / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths += files
            labels += [i] * len(files)
        empty = [c for i, c in enumerate(classes) if i not in labels]
        if len(classes) < 2 or empty:
            raise DataError(
                f"{self.root}: ImageFolder layout needs ≥ 2 class folders each holding images "
                f"(classes {classes}, empty {empty})"
            )
        ids = [f"{p.parent.name}/{p.name}" for p in paths]
        return LabelledImages(Stimuli.from_files(paths, ids=ids), np.asarray(labels, np.int64), tuple(classes))


# ----------------------------------------------------------------------------- catalog
def task_classes(pm: pluggy.PluginManager) -> dict[str, type[Task]]:
    """Every task class from the ``harness_tasks`` hook, plus the built-in ImageFolder task."""
    out: dict[str, type[Task]] = {ImageFolderTask.spec.id: ImageFolderTask}
    for result in pm.hook.harness_tasks():
        for cls in result or ():
            spec = getattr(cls, "spec", None)
            if not isinstance(spec, TaskSpec):
                raise HarnessError(f"task class {cls.__module__}.{cls.__qualname__} has no TaskSpec 'spec'")
            other = out.get(spec.id)
            if other is not None and other is not cls:
                raise HarnessError(
                    f"task id {spec.id!r} registered twice: {other.__module__}.{other.__qualname__} "
                    f"and {cls.__module__}.{cls.__qualname__}"
                )
            out[spec.id] = cls
    return out


def parse_task_args(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings (values read as YAML scalars/lists) → a mapping."""
    import yaml

    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--task-arg {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def make_task(name: str, pm: pluggy.PluginManager, settings: Settings, args: dict[str, Any] | None = None) -> Task:
    """``name`` is a task id from ``harness_tasks`` or a folder in ImageFolder layout."""
    classes = task_classes(pm)
    args = dict(args or {})
    if name in classes:
        cls = classes[name]
    elif Path(name).expanduser().is_dir():
        cls, args = ImageFolderTask, {"root": str(Path(name).expanduser()), **args}
    else:
        known = ", ".join(sorted(k for k in classes if k != ImageFolderTask.spec.id))
        raise HarnessError(f"unknown task {name!r}: not a registered task ({known or 'none'}) nor an ImageFolder directory")
    cls.spec.check_requirements(f"task {cls.spec.id!r}")
    parsed = cls.spec.parse_args(args, f"task {cls.spec.id!r}")
    return cls(parsed, settings)


# ----------------------------------------------------------------------------- split
def split_per_class(labels: np.ndarray, n_per_class: int, val_fraction: float, max_val_per_class: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: hold out ``val_fraction`` (at most ``max_val_per_class``) for validation first, then take
    up to ``n_per_class`` of the rest for training, so the few-shot training set never eats the validation set."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = min(max_val_per_class, max(1, round(val_fraction * len(idx))))
        if len(idx) - n_val < 1:
            raise DataError(f"class {int(c)} has {len(idx)} image(s): too few for a training and a validation sample")
        val.append(idx[:n_val])
        train.append(idx[n_val : n_val + n_per_class])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
