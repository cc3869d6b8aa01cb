"""Low-level fine-tune tasks that need no downloaded data: scikit-learn's digits and procedural gratings."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from harness.contracts import LabelledImages, Stimuli, Task
from harness.specs import PluginArgs, TaskSpec


class DigitsArgs(PluginArgs):
    #: upscale the 8×8 digits by pixel replication before the backbone's own resize (sharp strokes)
    upscale: int = Field(4, gt=0)


class Digits(Task):
    """The UCI handwritten digits that ship with scikit-learn (1 797 images, 8×8, 10 classes)."""

    spec = TaskSpec(id="digits", version="1", level="low-level", args=DigitsArgs, requires=("sklearn",), extra="dev",
                    summary="scikit-learn digits: 10 classes, 8×8 grey strokes (shipped with scikit-learn)")
    args: DigitsArgs

    def load(self) -> LabelledImages:
        from sklearn.datasets import load_digits

        d = load_digits()
        grey = np.clip(np.round(np.asarray(d.images) * (255.0 / 16.0)), 0, 255).astype(np.uint8)  # N×8×8, 0…16 → 0…255
        k = self.args.upscale
        grey = grey.repeat(k, axis=1).repeat(k, axis=2)
        rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
        return LabelledImages(Stimuli.from_array(rgb), np.asarray(d.target, np.int64), tuple(str(c) for c in range(10)))


class GratingsArgs(PluginArgs):
    n_orientations: int = Field(8, ge=2)
    per_class: int = Field(100, gt=0)
    size: int = Field(64, ge=16)
    #: standard deviation of the additive pixel noise relative to the grating amplitude
    noise: float = Field(0.5, ge=0)
    seed: int = 0


def gratings(args: GratingsArgs) -> tuple[np.ndarray, np.ndarray]:
    """Gabor patches of ``n_orientations`` evenly spaced orientations (0 … 180°) with random spatial frequency,
    phase, position, window size and contrast, plus pixel noise: only orientation predicts the label."""
    rng = np.random.default_rng(args.seed)
    s = args.size
    yy, xx = (np.mgrid[0:s, 0:s] + 0.5) / s
    n = args.n_orientations * args.per_class
    labels = np.repeat(np.arange(args.n_orientations), args.per_class)
    images = np.empty((n, s, s, 3), np.uint8)
    for i, c in enumerate(labels):
        theta = np.pi * c / args.n_orientations
        freq, phase = rng.uniform(3, 9), rng.uniform(0, 2 * np.pi)
        cx, cy, sigma = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.15, 0.3)
        g = np.sin(2 * np.pi * freq * ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) + phase)
        w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        img = rng.uniform(0.3, 1.0) * g * w + args.noise * rng.standard_normal((s, s))
        images[i] = np.clip(127.5 + 60 * img, 0, 255).astype(np.uint8)[..., None]
    return images, labels


class Gratings(Task):
    spec = TaskSpec(id="gratings", version="1", level="low-level", args=GratingsArgs,
                    summary="procedural Gabor gratings in noise: classify the orientation (8 classes, 22.5° apart)")
    args: GratingsArgs

    def load(self) -> LabelledImages:
        images, labels = gratings(self.args)
        names = tuple(f"{180 * c / self.args.n_orientations:g}deg" for c in range(self.args.n_orientations))
        return LabelledImages(Stimuli.from_array(images), labels.astype(np.int64), names)
