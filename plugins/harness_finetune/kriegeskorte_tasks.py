"""Semantic fine-tune tasks on the 92 Kriegeskorte images (the cichy92 order), labelled by the original study.

Labels come from ``categoryVectors``/``categoryLabels`` of
``Kriegeskorte_Neuron2008_supplementalData.mat`` (MATLAB v5) and the images from
its ``stimuli_92objs.image`` (175×175 RGB), so labels and pixels cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.contracts import LabelledImages, Stimuli, Task
from harness.errors import DataError
from harness.specs import PluginArgs, TaskSpec

FILE = "Kriegeskorte_Neuron2008_supplementalData.mat"


class K92Args(PluginArgs):
    #: folder holding the .mat; default ``$HARNESS_DATA_ROOT/kriegeskorte92``
    root: str | None = None


@lru_cache(maxsize=2)
def read_k92(path: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images 92×175×175×3 uint8, categoryVectors 92×12, categoryLabels)."""
    import scipy.io

    try:
        m = scipy.io.loadmat(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({exc})") from exc
    for key in ("stimuli_92objs", "categoryVectors", "categoryLabels"):
        if key not in m:
            raise DataError(f"{path}: no variable {key!r} (found {sorted(k for k in m if not k.startswith('__'))})")
    stim = m["stimuli_92objs"].reshape(-1)
    images = np.stack([np.asarray(s["image"], dtype=np.uint8) for s in stim])
    labels = tuple(str(np.asarray(x).reshape(-1)[0]) for x in m["categoryLabels"].reshape(-1))
    vectors = np.asarray(m["categoryVectors"])
    if images.shape[0] != vectors.shape[0] or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{path}: {images.shape} images but {vectors.shape[0]} category vectors")
    return images, vectors, labels


class K92Task(Task):
    """One class per listed category column; every image must carry exactly one of them."""

    #: (class name, categoryLabels column)
    columns: ClassVar[tuple[tuple[str, str], ...]]
    args: K92Args

    @property
    def path(self) -> Path:
        if self.args.root:
            return Path(self.args.root).expanduser() / FILE
        if self.settings.data_root is None:
            raise DataError(f"task {self.spec.id!r}: HARNESS_DATA_ROOT is not set (expected <root>/kriegeskorte92/{FILE})")
        return Path(self.settings.data_root) / "kriegeskorte92" / FILE

    def unavailable_reason(self) -> str | None:
        try:
            p = self.path
        except DataError as exc:
            return str(exc)
        return None if p.is_file() else f"{p}: missing"

    def load(self) -> LabelledImages:
        reason = self.unavailable_reason()
        if reason:
            raise DataError(reason)
        images, vectors, names = read_k92(str(self.path))
        missing = [col for _, col in self.columns if col not in names]
        if missing:
            raise DataError(f"{self.path}: categoryLabels lacks {missing} (has {list(names)})")
        onehot = np.stack([vectors[:, names.index(col)] for _, col in self.columns], axis=1).astype(bool)
        bad = np.flatnonzero(onehot.sum(1) != 1)
        if bad.size:
            raise DataError(f"{self.path}: images {bad.tolist()} carry {onehot[bad].sum(1).tolist()} of the labels "
                            f"{[c for _, c in self.columns]} (need exactly one)")
        ids = [f"k92_{i + 1:02d}" for i in range(len(images))]
        return LabelledImages(Stimuli.from_array(images, ids=ids), onehot.argmax(1).astype(np.int64),
                              tuple(c for c, _ in self.columns))


class K92Animacy(K92Task):
    spec = TaskSpec(id="k92_animacy", version="1", level="semantic", args=K92Args, requires=("scipy",),
                    summary="Kriegeskorte 92 images: animate vs inanimate (48/44)")
    columns = (("animate", "animate"), ("inanimate", "inanim"))


class K92Category(K92Task):
    spec = TaskSpec(id="k92_category", version="1", level="semantic", args=K92Args, requires=("scipy",),
                    summary="Kriegeskorte 92 images: face / body / natural object / artificial object (24/24/23/21)")
    columns = (("face", "face"), ("body", "body"), ("natural", "natObj"), ("artificial", "artiObj"))
