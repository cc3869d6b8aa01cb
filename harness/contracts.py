"""The four plugin contracts: Backbone → Tokens, Dataset → stimuli + targets, Head, Metric.

Plugins subclass these ABCs and expose a class-level :class:`~harness.specs.PluginSpec`.
The runner instantiates them as ``Plugin(args, ctx)`` where ``args`` is the validated
pydantic model of ``spec.args`` and ``ctx`` a context object below.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import numpy as np

from harness.errors import DataError, HarnessError
from harness.specs import PluginArgs, PluginKind, PluginSpec, Preprocess, RegistryEntry, TaskSpec

if TYPE_CHECKING:  # heavy imports only for type checkers
    import pandas as pd
    import torch
    from PIL import Image

    from harness.kit.fetch import FetchPlan
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
    #: the installed plugin class of a kind and id (a derived backbone rebuilds its parent's architecture)
    plugin_class: Callable[[PluginKind, str], type[Plugin]] | None = None
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


def _declare(cls: type[Plugin], field: Literal["consumes", "produces"], kind: str) -> None:
    """Add ``kind`` to the ``consumes``/``produces`` of a spec the class itself defines (typed bases derive it)."""
    spec = cls.__dict__.get("spec")
    if isinstance(spec, PluginSpec) and kind not in getattr(spec, field):
        cls.spec = spec.model_copy(update={field: getattr(spec, field) | {kind}})


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
    #: the net runs channels-last (measured faster for CPU CNNs): extraction builds its input batches in that memory
    #: order rather than the net transposing every batch; plugins may make it a property
    channels_last: bool = False

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
        """A cheap check, loading nothing: why this entry cannot be built here, or None.

        Arguments first (:meth:`check_args`), then — unless the entry is a random-init control —
        the weights (:meth:`weights_reason`); a :class:`HarnessError` from either is the reason.
        Backbones override those two hooks, not this skeleton."""
        try:
            self.check_args()
            return None if self.ctx.random_init else self.weights_reason()
        except HarnessError as exc:
            return str(exc)

    def check_args(self) -> None:
        """Raise a one-line :class:`HarnessError` for arguments that cannot build (unknown architecture, tag …)."""

    def weights_reason(self) -> str | None:
        """Why the pretrained weights are not available offline (where to put them), or None when they are."""
        return None

    def to(self, device: str) -> Backbone:
        """Move the network; plugins with a torch module override via :class:`harness.kit.hooked.HookedBackbone`."""
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
    #: columns voxel_id, roi, and optionally x, y, z (mm) and, for units on the fsaverage surface, hemi (lh/rh) and
    #: fsaverage_index (the vertex on FreeSurfer's fsaverage, 0-based; `harness report` draws those on the surface)
    voxels: pd.DataFrame
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


class _TypedDataset(Dataset):
    """``produces`` follows from ``target_kind``: a dataset declares its target kind once, by its base."""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        _declare(cls, "produces", cls.target_kind)  # type: ignore[arg-type]


class VoxelDataset(_TypedDataset):
    """Stimuli × voxel responses per subject."""

    target_kind = "voxels"  # type: ignore[assignment]

    @abstractmethod
    def targets(self, subject: str) -> VoxelTargets:
        ...


class RDMDataset(_TypedDataset):
    """RDMs per ROI and subject."""

    target_kind = "rdms"  # type: ignore[assignment]

    @abstractmethod
    def targets(self, subject: str) -> RDMTargets:
        ...


# ----------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class TokenStore:
    """Read-only view of one token-cache entry (``harness/cache.py`` writes them); arrays are memory-mapped,
    never loaded whole. Heads read their backbone's tokens through it."""

    path: Path
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.meta["layers"])

    @property
    def n(self) -> int:
        return int(self.meta["n"])

    def _file(self, layer: str, part: str) -> Path:
        return self.path / f"{self.layers.index(layer):03d}_{part}.npy"

    def local(self, layer: str) -> np.ndarray:
        """``N×C×H×W`` local tokens (memory-mapped, stored dtype)."""
        return np.load(self._file(layer, "local"), mmap_mode="r")

    def global_(self, layer: str) -> np.ndarray:
        """``N×C`` global token (CLS for ViTs, mean-pooled for CNNs)."""
        return np.load(self._file(layer, "global"), mmap_mode="r")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v) for k, v in self.meta["shapes"].items()}

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Each data file's recorded ``size`` and checksum (written with the entry)."""
        return dict(self.meta.get("files") or {})

    def trusted(self) -> bool:
        """Verify the checksums unless no file changed since they were last verified; a damaged entry
        is quarantined (with a warning naming it) and ``False`` returned."""
        from harness import cache_integrity as integrity  # the cache's helper; imported here, used rarely

        return integrity.trusted(self.path, self.files)


# ----------------------------------------------------------------------------- views
class View(ABC):
    """A transform of a stimulus set into the images a backbone sees, other than its plain centre crop.

    A head that needs, say, several random crops per image describes them as a view and asks
    for ``HeadInput.view_tokens(view, …)``: the core then runs the one extraction path — batching,
    the float16 range guard, atomic content-addressed caching — on the view's rows.
    """

    @abstractmethod
    def key(self) -> dict[str, Any]:
        """Everything that changes the view's pixels or pooling (joins weights, layers and stimuli in the cache key)."""

    @abstractmethod
    def n_rows(self, n_stimuli: int) -> int:
        """Rows of the result for ``n_stimuli`` images (e.g. images × crops)."""

    @abstractmethod
    def batches(self, stimuli: Stimuli, preprocess: Preprocess, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first row, B×3×H×W normalised batch)`` in row order; the backbone's own preprocessing is given."""

    def pool(self, local: torch.Tensor) -> torch.Tensor:
        """Pool a ``B×C×H×W`` float32 map before storing it (default: unchanged)."""
        return local

    def meta(self) -> dict[str, Any]:
        """Extra fields for the cache entry's ``meta.json`` (shown by ``harness cache ls``)."""
        return {}


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
    #: for heads on the live backbone: its tokens on a :class:`View` of the stimuli (e.g. random crops), extracted
    #: and cached by the core exactly as plain tokens are; ``view_tokens(view, batch_size, progress)``
    view_tokens: Callable[[View, int, Callable[[int, int], None] | None], TokenStore] | None = None


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


class _TypedHead(Head):
    """Checks once what every head of a target kind used to check itself: the targets' type, and that the
    tokens or live backbone its spec consumes are there. Subclasses implement :meth:`fit`."""

    targets_type: ClassVar[type]
    target_kind: ClassVar[str]  #: the ``consumes`` word
    target_noun: ClassVar[str]  #: how error messages name the targets

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        _declare(cls, "consumes", cls.target_kind)

    def fit_predict(self, data: HeadInput) -> HeadOutput:
        # a head built outside a factory (tests, notebooks) has no context: name it by its plugin id
        name, consumes = (self.ctx.entry.name if self.ctx else self.spec.id), self.spec.consumes
        if not isinstance(data.targets, self.targets_type):
            raise DataError(f"head {name!r} needs {self.target_noun} targets, got {type(data.targets).__name__}")
        if "tokens" in consumes and data.tokens is None:
            raise DataError(f"head {name!r} needs cached tokens (HeadInput.tokens)")
        if "backbone" in consumes and data.backbone is None:
            raise DataError(f"head {name!r} needs the live backbone (HeadInput.backbone)")
        return self.fit(data, data.targets)

    @abstractmethod
    def fit(self, data: HeadInput, targets: Any) -> HeadOutput:
        ...


class VoxelHead(_TypedHead):
    """A head predicting voxel responses: ``consumes`` gets ``voxels``; :meth:`fit` receives :class:`VoxelTargets`."""

    targets_type = VoxelTargets
    target_kind = "voxels"
    target_noun = "voxel"

    @abstractmethod
    def fit(self, data: HeadInput, targets: VoxelTargets) -> HeadOutput:
        ...


class RDMHead(_TypedHead):
    """A head predicting model RDMs: ``consumes`` gets ``rdms``; :meth:`fit` receives :class:`RDMTargets`."""

    targets_type = RDMTargets
    target_kind = "rdms"
    target_noun = "RDM"

    @abstractmethod
    def fit(self, data: HeadInput, targets: RDMTargets) -> HeadOutput:
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


# ----------------------------------------------------------------------------- fine-tune task
# A task is not a brain dataset: it has class labels instead of voxels or RDMs and never
# enters the backbone × head × dataset plan, so it gets its own small contract and hook
# (``harness_tasks``) rather than a new target kind that every head would have to refuse.


@dataclass(frozen=True)
class LabelledImages:
    """Images with one integer class label each (``0 … len(classes) - 1``)."""

    stimuli: Stimuli
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        y = np.asarray(self.labels)
        if y.ndim != 1 or len(y) != len(self.stimuli):
            raise DataError(f"task labels: {y.shape} labels for {len(self.stimuli)} images")
        if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
            raise DataError(f"task labels must lie in 0…{len(self.classes) - 1}, got {int(y.min())}…{int(y.max())}")
        if len(self.classes) < 2:
            raise DataError(f"a classification task needs at least 2 classes, got {list(self.classes)}")

    @property
    def digest(self) -> str:
        """Images, labels and class names: any change is a different task for the derived-backbone key."""
        h = hashlib.sha256(self.stimuli.digest.encode())
        h.update(np.asarray(self.labels, np.int64).tobytes())
        h.update("\x00".join(self.classes).encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        return {c: int((np.asarray(self.labels) == i).sum()) for i, c in enumerate(self.classes)}


class Task(ABC):
    """A labelled image set; instantiated as ``Task(args, settings)`` like the other plugins."""

    spec: ClassVar[TaskSpec]

    def __init__(self, args: PluginArgs, settings: Settings) -> None:
        self.args = args
        self.settings = settings

    @property
    def id(self) -> str:
        return self.spec.id

    def unavailable_reason(self) -> str | None:
        """A cheap check: why this task cannot be loaded here (e.g. its data is absent), or None."""
        return None

    @abstractmethod
    def load(self) -> LabelledImages:
        ...
