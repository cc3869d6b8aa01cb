"""What the first-party datasets declare: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.specs import (
    RDMS,
    VOXELS,
    PluginArgs,
    PluginSpec,
)

if TYPE_CHECKING:
    from harness_datasets.synthetic_brain import BrainDesign

Hemi = Literal["lh", "rh"]
STORED_SEED, STORED_TEST_FRACTION = 0, 0.2
SetName = Literal["92", "118", "78"]
DEFAULT_LABEL_FILES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")


class RDMProtocolArgs(PluginArgs):
    """How heads on this RDM dataset are evaluated, as data (heads follow :attr:`RDMTargets.folds`).

    ``images: held_out`` (the default): a head never scores image pairs it was fitted to. Without ``predict``
    each image set is split into ``image_folds`` folds (fewer for sets under 3 images per fold): the head fits the RDM block of the other folds' images
    (all subjects) and predicts the fold's block among its own images. With ``predict`` (datasets that join
    image sets; ROIs ``<set>/<roi>``) the listed sets train (all their images and subjects, several at once)
    and the key set is predicted: ``{"92": ["118"]}`` is 118 → 92, ``{"78": ["92", "118"]}`` the challenge.
    ``images: seen`` restores each head's own protocol on all images (subjects held out, images shared):
    its scores are labelled as such and ranked apart.
    """

    images: Literal["held_out", "seen"] = "held_out"
    image_folds: int = Field(3, ge=2)
    predict: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class K08Args(RDMProtocolArgs):
    #: folder; default ``$HARNESS_DATA_ROOT/kriegeskorte92``
    root: str | None = None
    species: Literal["human", "monkey"] = "human"
    sessions: Literal["mean", "separate"] = "mean"


KRIEGESKORTE92 = PluginSpec(
    id="kriegeskorte92",
    kind="dataset",
    version="1",
    summary="Kriegeskorte 2008 92 images: human IT RDMs (4 subjects × 2 sessions) or monkey IT RDM",
    args=K08Args,
    produces=frozenset({RDMS}),
)


class SyntheticArgs(PluginArgs):
    #: registry backbone whose tokens generate the responses
    backbone: str = "mobilenet_v2_random"
    #: "procedural", or the name of a registry dataset whose stimuli to use
    stimuli: str = "procedural"
    n_stimuli: int = 240  #: procedural stimuli only
    image_size: int = 64  #: procedural stimuli only
    n_subjects: int = 2
    rois: tuple[str, ...] = ("V1", "V2", "V4", "IT")
    voxels_per_roi: int = 50
    sheet: Literal["2d", "3d"] = "2d"
    #: "bands": ROIs side by side; "mixed": ROIs intermixed over the whole sheet (position says nothing of ROI)
    roi_layout: Literal["bands", "mixed"] = "bands"
    roi_width_mm: float = 10.0
    sheet_height_mm: float = 10.0
    depth_range: tuple[float, float] = (0.0, 1.0)
    layer_jitter: float = 0.0
    layer_mix_sd: float = 0.0
    rf_size: tuple[float, float] = (0.06, 0.25)
    rf_ecc_gain: float = 0.5
    global_mix: tuple[float, float] = (0.0, 0.5)
    mix_jitter: float = 0.0
    n_basis: int = 8
    #: share of channel-weight variance that is one pattern per ROI (plants ROI channel signatures; 0: none)
    roi_channel_share: float = Field(0.0, ge=0, le=1)
    weight_length_mm: float = 5.0
    readout_grid: int = 16
    #: single-repeat signal-to-noise variance ratio
    snr: float = 1.0
    snr_spread: float = 0.0
    n_repeats: int = 2
    test_fraction: float = 0.25
    seed: int = 0

    def design(self) -> BrainDesign:
        from harness_datasets.synthetic_brain import BrainDesign  # numpy: only when a brain is generated

        keep = {f for f in BrainDesign.__dataclass_fields__}
        return BrainDesign(**{k: v for k, v in self.model_dump().items() if k in keep})


SYNTHETIC_VOXELS = PluginSpec(
    id="synthetic_voxels",
    kind="dataset",
    version="2",
    summary="synthetic brain with planted layer, RF, scale mix, channel weights and known noise ceiling",
    args=SyntheticArgs,
    produces=frozenset({VOXELS}),
)


SYNTHETIC_RDMS = PluginSpec(
    id="synthetic_rdms",
    kind="dataset",
    version="2",
    summary="synthetic brain as per-ROI RDMs (planted ROI layers, known clean RDMs)",
    args=SyntheticArgs,
    produces=frozenset({RDMS}),
)


class NSDArgs(PluginArgs):
    #: NSD root; default ``$HARNESS_DATA_ROOT/nsd``
    root: str | None = None
    subject: int = 1
    space: Literal["fsaverage", "func1pt8mm"] = "fsaverage"
    beta_version: str = "betas_fithrf_GLMdenoise_RR"
    #: sessions to load (1-based); empty = every session present
    sessions: tuple[int, ...] = ()
    #: label file whose positive entries are the voxels ("" = every vertex/voxel)
    mask: str = "nsdgeneral"
    roi_column: str = "streams"
    #: keep only voxels whose ``roi_column`` label is one of these (empty = all in the mask)
    rois: tuple[str, ...] = ()
    #: label files added as voxel-table columns; default: fsaverage ("streams", the atlas labels NSD ships
    #: there), func1pt8mm (prf-visualrois, floc-bodies/faces/places/words, streams: the subject's own ROIs)
    label_files: tuple[str, ...] | None = None
    hemis: tuple[Hemi, ...] = ("lh", "rh")
    surface: str = "sphere"
    hemi_offset_mm: float = 250.0
    zscore_sessions: bool = True
    images: Literal["all", "shared1000"] = "all"
    #: used only when ``images="shared1000"`` (the shared images cannot then be the test split)
    test_fraction: float = 0.2
    seed: int = 0


NSD_SPEC = PluginSpec(
    id="nsd",
    kind="dataset",
    version="1",
    summary="Natural Scenes Dataset: GLMsingle betas (fsaverage .mgh or func1pt8mm NIfTI), shared-1000 test, ncsnr ceiling",
    args=NSDArgs,
    produces=frozenset({VOXELS}),
    requires=("nibabel",),
    extra="data",
)


class CowleyArgs(PluginArgs):
    session: str = "201025"
    #: folder; default ``$HARNESS_DATA_ROOT/cowley_v4``
    root: str | None = None
    test_fraction: float = STORED_TEST_FRACTION
    split_seed: int = STORED_SEED
    #: random repeat splits averaged for the split-half ceiling
    n_splits: int = 100


COWLEY_V4 = PluginSpec(
    id="cowley_v4",
    kind="dataset",
    version="1",
    summary="Cowley 2023 macaque V4 neurons × natural images (one session), split-half ceiling where repeats exist",
    args=CowleyArgs,
    produces=frozenset({VOXELS}),
)


class AlgonautsArgs(RDMProtocolArgs):
    set: SetName = "92"
    #: join several sets in one job (overrides ``set``); ROIs become ``<set>/<roi>``
    sets: tuple[SetName, ...] = ()
    #: folder of the set; default ``$HARNESS_DATA_ROOT/cichy92`` (``cichy118``, ``cichy78``)
    root: str | None = None
    #: per-set folders when joining sets
    roots: dict[str, str] = Field(default_factory=dict)
    modalities: tuple[Literal["fmri", "meg"], ...] = ("fmri",)
    rois: tuple[str, ...] = ("EVC", "IT")
    meg_windows: tuple[Literal["early", "late"], ...] = ("early", "late")
    meg_sessions: Literal["mean", "1", "2"] = "mean"
    #: start times (ms) of time-resolved MEG ROIs ``MEG_t<ms>``; needs MEG_decoding_RDMs.mat
    meg_times_ms: tuple[float, ...] = ()
    meg_window_ms: float = 10.0
    #: also hand heads each ``MEG_t<ms>`` window's per-sample RDMs (subjects × time × N × N), so the stage
    #: aggregation head can train on time points sampled toward the window's middle (Gaziv 2019)
    meg_time_resolved: bool = False
    meg_time0_ms: float = -100.0
    meg_dt_ms: float = 1.0


ALGONAUTS2019 = PluginSpec(
    id="algonauts2019",
    kind="dataset",
    version="2",
    summary="Algonauts 2019 RDMs: fMRI (EVC, IT) and MEG (early, late, time-resolved); 92/118/78 sets, joinable",
    args=AlgonautsArgs,
    produces=frozenset({RDMS}),
)


class A23Args(PluginArgs):
    #: challenge data root (holding subj01 …); default ``$HARNESS_DATA_ROOT/algonauts2023``
    root: str | None = None
    subject: int = 1
    hemis: tuple[Literal["lh", "rh"], ...] = ("lh", "rh")
    roi_column: str = "streams"
    #: keep only vertices whose ``roi_column`` label is one of these (empty = all)
    rois: tuple[str, ...] = ()
    label_files: tuple[str, ...] = DEFAULT_LABEL_FILES
    #: FreeSurfer fsaverage subject folder for vertex coordinates (optional)
    fsaverage: str | None = None
    surface: str = "sphere"
    hemi_offset_mm: float = 250.0
    test_fraction: float = 0.1
    seed: int = 0


ALGONAUTS2023 = PluginSpec(
    id="algonauts2023",
    kind="dataset",
    version="1",
    summary="Algonauts 2023 challenge layout (NSD fsaverage vertices, ROI masks, challenge noise ceiling)",
    args=A23Args,
    produces=frozenset({VOXELS}),
)


class FolderArgs(PluginArgs):
    root: str
    test_fraction: float = 0.2
    seed: int = 0
    ceiling: Literal["split_half", "ncsnr", "none"] = "split_half"
    #: ROI order (shallow → deep) for the hierarchy level of each ROI; default: first appearance
    roi_order: tuple[str, ...] = ()


FOLDER = PluginSpec(
    id="folder",
    kind="dataset",
    version="1",
    summary="your own data: images/ + responses.npy (optional repeats axis) + voxels.csv (roi, x, y, z)",
    args=FolderArgs,
    produces=frozenset({VOXELS}),
)


class TrainSubsetArgs(PluginArgs):
    #: registry name of the voxel dataset to subsample
    dataset: str
    #: training stimuli kept (at most the wrapped dataset's training set)
    n_train: int = Field(gt=2)
    #: independent subsamples (job units per wrapped subject)
    seeds: int = Field(3, ge=1)
    seed_base: int = 0
    #: wrapped subjects to keep (None: all); a curve on one subject costs a fraction of all
    subjects: tuple[str, ...] | None = None


TRAIN_SUBSET = PluginSpec(
    id="train_subset",
    kind="dataset",
    version="1",
    summary="another voxel dataset with n_train training stimuli (seeded, nested subsamples; test set fixed)",
    args=TrainSubsetArgs,
    produces=frozenset({VOXELS}),
)
