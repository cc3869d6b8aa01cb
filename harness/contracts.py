"""The four plugin contracts: Backbone → Tokens, Dataset → stimuli + targets, Head, Metric.

Plugins subclass these ABCs and expose a class-level :class:`~harness.specs.PluginSpec`.
The runner instantiates them as ``Plugin(args, ctx)`` where ``args`` is the validated
pydantic model of ``spec.args`` and ``ctx`` a context object below.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import numpy as np

from harness.errors import DataError
from harness.specs import PluginArgs, PluginSpec, Preprocess, RegistryEntry

if TYPE_CHECKING:  # heavy imports only for type checkers
    import pandas as pd
    import torch
    from PIL import Image

    from harness.cache import TokenStore
    from harness.fetch import FetchPlan
    from harness.settings import Settings


# ----------------------------------------------------------------------------- contexts
@dataclass(frozen=True)
class BuildContext:
    """What a plugin may know about the run building it."""

    entry: RegistryEntry
    settings: Settings
    device: str = "cpu"
    seed: int = 0
    #: lets a dataset generate targets from another registry backbone's cached tokens
    tokens_for: Callable[[str, Stimuli], TokenStore] | None = None
    #: lets a dataset reuse another registry dataset's stimuli (e.g. a synthetic brain on real images)
    stimuli_for: Callable[[str], Stimuli] | None = None
    #: lets a dataset wrap another registry dataset (e.g. a training-set subsample for data-scaling curves)
    dataset_for: Callable[[str], Dataset] | None = None

    @property
    def random_init(self) -> bool:
        return self.entry.random_init


class Plugin(ABC):
    """Common base: the spec, the validated args and the build context."""

    spec: ClassVar[PluginSpec]

    def __init__(self, args: PluginArgs, ctx: BuildContext) -> None:
        self.args = args
        self.ctx = ctx


# ----------------------------------------------------------------------------- backbone
class LayerTokens(NamedTuple):
    """One tapped layer for a batch: local tokens ``B×C×H×W`` and a global token ``B×C``."""

    local: torch.Tensor
    global_: torch.Tensor


class Backbone(Plugin):
    """A network read out at ordered layers (shallow → deep)."""

    #: CPU bf16 autocast was measured faster than fp32 for this family with tokens correlating ≥ 0.999
    #: (benchmarks/bench_extraction.py); extraction precision ``auto`` then uses bf16 on CPU too
    cpu_bf16: bool = False

    @property
    @abstractmethod
    def preprocess(self) -> Preprocess:
        """Preprocessing the network was trained with; part of the token-cache key."""

    @property
    @abstractmethod
    def layers(self) -> tuple[str, ...]:
        """Tapped layer names, shallow to deep; the order defines layer depth for hierarchy metrics."""

    @abstractmethod
    def weights_digest(self) -> str:
        """Content hash of the weights actually loaded (keys the cache; never the entry name)."""

    @abstractmethod
    def tokens(self, x: torch.Tensor) -> dict[str, LayerTokens]:
        """Forward a preprocessed batch ``B×3×H×W`` and return every tapped layer's tokens."""

    def unavailable_reason(self) -> str | None:
        """A cheap check, loading nothing: why this entry cannot be built here (e.g. weights missing offline)."""
        return None

    def to(self, device: str) -> Backbone:
        """Move the network; plugins with a torch module override via :class:`harness.hooked.HookedBackbone`."""
        return self

    def module(self) -> torch.nn.Module | None:
        """The trainable torch module, for heads that train through the backbone and for fine-tuning."""
        return None


# ----------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class Stimuli:
    """Image ids, a loader, and a digest of the image content (keys the token cache)."""

    ids: tuple[str, ...]
    load: Callable[[int], Image.Image]
    digest: str

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_files(cls, paths: Sequence[Path], ids: Sequence[str] | None = None) -> Stimuli:
        """Digest is over file bytes, so an edited image misses the cache."""
        paths = [Path(p) for p in paths]
        h = hashlib.sha256()
        for p in paths:
            try:
                h.update(p.read_bytes())
            except OSError as exc:
                raise DataError(f"{p}: cannot read stimulus image ({exc.strerror or exc})") from exc
        names = tuple(ids) if ids is not None else tuple(p.stem for p in paths)

        def load(i: int) -> Image.Image:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(paths[i]) as im:
                    return im.convert("RGB")
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise DataError(f"{paths[i]}: corrupt or unreadable image ({exc})") from exc

        return cls(ids=names, load=load, digest=h.hexdigest())

    @classmethod
    def from_array(cls, images: np.ndarray, ids: Sequence[str] | None = None) -> Stimuli:
        """``images``: ``N×H×W×3`` uint8, e.g. procedurally generated stimuli."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DataError(f"stimulus array must be N×H×W×3 uint8, got {images.shape} {images.dtype}")
        digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
        names = tuple(ids) if ids is not None else tuple(f"img{i:05d}" for i in range(len(images)))

        def load(i: int) -> Image.Image:
            from PIL import Image

            return Image.fromarray(images[i])

        return cls(ids=names, load=load, digest=digest)


def _finite_or_raise(arr: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError(f"{what}: {int(bad.sum())} non-finite value(s) (NaN/inf); clean or mask them")


@dataclass
class VoxelTargets:
    """Responses of one subject: stimuli × voxels (repeat-averaged), with a split and a voxel table."""

    responses: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    voxels: pd.DataFrame  #: columns voxel_id, roi, and optionally x, y, z
    repeats: np.ndarray | None = None  #: stimuli × repeats × voxels, NaN for missing repeats
    noise_ceiling_r: np.ndarray | None = None  #: per-voxel ceiling on the Pearson-r scale
    roi_levels: dict[str, float] = field(default_factory=dict)  #: ideal hierarchy level per ROI
    #: voxels the dataset dropped before handing them over (e.g. NaN responses); the runner
    #: adds this to the job's ``n_excluded`` so no exclusion goes unrecorded
    n_excluded: int = 0
    kind: ClassVar[str] = "voxels"

    def validate(self, n_stimuli: int, where: str) -> None:
        r = self.responses
        if r.ndim != 2:
            raise DataError(f"{where}: responses must be 2-D stimuli×voxels, got shape {r.shape}")
        if r.shape[0] != n_stimuli:
            raise DataError(f"{where}: {r.shape[0]} response rows but {n_stimuli} stimuli")
        if len(self.voxels) != r.shape[1]:
            raise DataError(f"{where}: {r.shape[1]} voxel columns but {len(self.voxels)} rows in the voxel table")
        for col in ("voxel_id", "roi"):
            if col not in self.voxels.columns:
                raise DataError(f"{where}: voxel table lacks column {col!r}")
        _finite_or_raise(r, f"{where}: responses")
        for name, idx in (("train_idx", self.train_idx), ("test_idx", self.test_idx)):
            if len(idx) == 0 or idx.min() < 0 or idx.max() >= n_stimuli:
                raise DataError(f"{where}: {name} empty or out of range for {n_stimuli} stimuli")
        if np.intersect1d(self.train_idx, self.test_idx).size:
            raise DataError(f"{where}: train and test stimuli overlap")


@dataclass(frozen=True)
class RDMFold:
    """One held-out evaluation of an RDM dataset, as data (the dataset decides the protocol, heads follow it).

    A head fits its model to the RDMs of the ``train`` ROIs (each restricted to the listed positions of that
    ROI's RDM, all of its subjects) and predicts ``roi``'s RDM among the images at positions ``test`` only;
    the metric scores that block among its own images. The images scored never overlap the images trained
    on (checked in :meth:`RDMTargets.validate`). ``subjects``: ``held_out`` when the scored subjects'
    RDMs are not among the training RDMs (another image set's subjects), ``seen`` when they are (k-fold over
    images of one set: same subjects, other images).
    """

    roi: str
    test: np.ndarray
    train: dict[str, np.ndarray]
    subjects: Literal["held_out", "seen"] = "seen"


@dataclass
class RDMTargets:
    """RDMs per ROI, each ``subjects × stimuli × stimuli``."""

    rdms: dict[str, np.ndarray]
    subject_ids: list[str]
    roi_levels: dict[str, float] = field(default_factory=dict)
    #: ROI → indices of the stimuli its RDMs span, for datasets that join image sets (e.g. the
    #: Algonauts 92 + 118 sets: "92/IT" spans the first 92); ROIs not listed span all stimuli.
    #: RDM heads build each ROI's model RDM over ``stimuli_of(roi, n)``.
    stimulus_idx: dict[str, np.ndarray] = field(default_factory=dict)
    #: ROI → ``subjects × time × N × N``: the time-resolved RDMs (MEG) whose mean over time is the ROI's RDM.
    #: Heads may train on time points sampled from them (Gaziv 2019); scoring always uses ``rdms``.
    time_rdms: dict[str, np.ndarray] = field(default_factory=dict)
    #: the held-out-image protocol (see :class:`RDMFold`); empty: heads use their own protocol on these images
    #: (images seen, subjects held out). With folds, only the ROIs they name are predicted and scored.
    folds: list[RDMFold] = field(default_factory=list)
    kind: ClassVar[str] = "rdms"

    def stimuli_of(self, roi: str, n_stimuli: int) -> np.ndarray:
        idx = self.stimulus_idx.get(roi)
        return np.arange(n_stimuli) if idx is None else np.asarray(idx)

    def scored_rois(self) -> list[str]:
        """The ROIs a head predicts and a metric scores: those the folds name, or every ROI."""
        return list(dict.fromkeys(f.roi for f in self.folds)) if self.folds else list(self.rdms)

    def protocol(self) -> dict[str, str]:
        """``images``/``subjects``: ``held_out`` or ``seen``, as recorded with every job and score."""
        if not self.folds:
            return {"images": "seen", "subjects": "held_out"}
        return {"images": "held_out",
                "subjects": "held_out" if all(f.subjects == "held_out" for f in self.folds) else "seen"}

    def validate(self, n_stimuli: int, where: str) -> None:
        for roi, r in self.rdms.items():
            w = f"{where}: ROI {roi!r}"
            if r.ndim != 3 or r.shape[1] != r.shape[2]:
                raise DataError(f"{w}: RDMs must be subjects×N×N (square), got shape {r.shape}")
            idx = self.stimuli_of(roi, n_stimuli)
            if len(idx) and (idx.min() < 0 or idx.max() >= n_stimuli or len(np.unique(idx)) != len(idx)):
                raise DataError(f"{w}: stimulus_idx must be distinct indices below {n_stimuli}")
            if r.shape[1] != len(idx):
                raise DataError(f"{w}: RDM size {r.shape[1]} but {len(idx)} stimuli")
            if r.shape[0] != len(self.subject_ids):
                raise DataError(f"{w}: {r.shape[0]} RDMs but {len(self.subject_ids)} subject ids")
            _finite_or_raise(r, w)
            asym = float(np.abs(r - r.transpose(0, 2, 1)).max())
            if asym > 1e-5 * max(1.0, float(np.abs(r).max())):
                raise DataError(f"{w}: RDM is not symmetric (max |D - Dᵀ| = {asym:.3g})")
        for k, fold in enumerate(self.folds):
            self._validate_fold(k, fold, n_stimuli, where)
        for roi, tr in self.time_rdms.items():
            w = f"{where}: ROI {roi!r} time-resolved RDMs"
            if roi not in self.rdms:
                raise DataError(f"{w}: no RDM of that ROI")
            if tr.ndim != 4 or tr.shape[0] != self.rdms[roi].shape[0] or tr.shape[2:] != self.rdms[roi].shape[1:]:
                raise DataError(f"{w}: shape {tr.shape}, expected subjects×time×N×N with subjects×N×N = "
                                f"{self.rdms[roi].shape}")
            _finite_or_raise(tr, w)


    def _validate_fold(self, k: int, fold: RDMFold, n_stimuli: int, where: str) -> None:
        w = f"{where}: fold {k} (ROI {fold.roi!r})"
        seen: set[int] = set()
        for roi, pos in (*fold.train.items(), (fold.roi, fold.test)):
            if roi not in self.rdms:
                raise DataError(f"{w}: no ROI {roi!r} in the targets ({sorted(self.rdms)})")
            n = self.rdms[roi].shape[1]
            pos = np.asarray(pos)
            if pos.size < (3 if roi == fold.roi else 2) or pos.min() < 0 or pos.max() >= n or len(np.unique(pos)) != len(pos):
                raise DataError(f"{w}: positions of {roi!r} must be ≥ 3 distinct indices below {n} (scored) or ≥ 2 (train)")
            images = {int(i) for i in self.stimuli_of(roi, n_stimuli)[pos]}
            if roi == fold.roi and images & seen:
                raise DataError(f"{w}: {len(images & seen)} scored image(s) are also training images")
            if roi != fold.roi:
                seen |= images


Targets = VoxelTargets | RDMTargets


class Dataset(Plugin):
    """Stimuli plus per-subject targets of one kind (``voxels`` or ``rdms``)."""

    @property
    @abstractmethod
    def target_kind(self) -> Literal["voxels", "rdms"]:
        ...

    @abstractmethod
    def stimuli(self) -> Stimuli:
        ...

    @abstractmethod
    def subjects(self) -> list[str]:
        """Job units. RDM datasets whose metric pools subjects may return one group id."""

    @abstractmethod
    def targets(self, subject: str) -> Targets:
        ...

    def unavailable_reason(self) -> str | None:
        """A cheap check: why this dataset cannot be loaded here (e.g. data root not set), or None."""
        return None

    def digest(self) -> str:
        """Identity of the data for job keys; defaults to the stimuli digest."""
        return self.stimuli().digest

    def fetch_plan(self) -> FetchPlan | None:
        """The public files of this entry and where they go (``harness data fetch``); None: not downloadable."""
        return None


# ----------------------------------------------------------------------------- head
@dataclass
class HeadInput:
    targets: Targets
    stimuli: Stimuli
    tokens: TokenStore | None = None
    backbone: Backbone | None = None
    device: str = "cpu"
    seed: int = 0
    progress: Callable[[str, float], None] | None = None


@dataclass
class HeadOutput:
    """What a head hands to metrics and to the selections table."""

    layers: tuple[str, ...]
    #: voxel heads: predictions on ``targets.test_idx`` stimuli, ``n_test × V``
    predictions: np.ndarray | None = None
    #: RDM heads: ROI → ``subjects × N × N``: the model RDM used to predict each (held-out) subject
    model_rdms: dict[str, np.ndarray] | None = None
    #: units × layers, rows sum to 1: which layers each voxel (or ROI) reads from
    layer_weights: np.ndarray | None = None
    unit_ids: list[str] = field(default_factory=list)
    unit_rois: list[str] = field(default_factory=list)
    #: long table of extra selections: unit, roi, selector, layer, layer_index, weight, value
    selections: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: files the head saved for later analysis, name → path (e.g. ``"model"``: the fitted weights as a
    #: content-addressed safetensors file); the runner links them to the job in the ``artifacts`` table
    artifacts: dict[str, str] = field(default_factory=dict)


class Head(Plugin):
    """Maps backbone features to brain targets."""

    @abstractmethod
    def fit_predict(self, data: HeadInput) -> HeadOutput:
        ...


# ----------------------------------------------------------------------------- metric
@dataclass
class Score:
    """Brain-Score style: raw value, ceiling and error travel together."""

    metric: str
    roi: str
    raw: float
    ceiling: float | None = None
    normalised: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    p_value: float | None = None
    subject: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: per-unit values behind the summary (unit id → value, e.g. each voxel's r); stored in ``unit_scores``
    units: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricContext:
    dataset: str
    subject: str
    seed: int = 0


class Metric(Plugin):
    """Scores a head's output against the targets."""

    @abstractmethod
    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        ...
