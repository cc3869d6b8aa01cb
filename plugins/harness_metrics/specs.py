"""What the first-party metrics declare: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.specs import (
    LAYER_WEIGHTS,
    MODEL_RDMS,
    RDMS,
    SCORES,
    VOXEL_PREDICTIONS,
    VOXELS,
    PluginArgs,
    PluginSpec,
)

CeilingSource = Literal["auto", "dataset", "ncsnr", "split_half", "none"]


class PearsonArgs(PluginArgs):
    n_boot: int = Field(200, ge=0, description="bootstrap replicates over test stimuli (0: no CI)")
    ci: float = Field(0.95, gt=0, lt=1)
    #: where the per-voxel noise ceiling comes from; auto = the dataset's own, else NSD ncsnr from repeats
    ceiling: CeilingSource = "auto"
    n_splits: int = Field(100, ge=1, description="random splits for the split-half ceiling")
    #: store each voxel's r in ``unit_scores`` (needed by the ROI "max" view)
    store_units: bool = True


PEARSON = PluginSpec(
    id="pearson",
    kind="metric",
    version="2",
    summary="voxel-wise Pearson r on held-out stimuli (median/mean per ROI), Algonauts 2023 noise-normalised, "
            "bootstrap CI over stimuli",
    args=PearsonArgs,
    consumes=frozenset({VOXEL_PREDICTIONS, VOXELS}),
    produces=frozenset({SCORES}),
)


class RSAArgs(PluginArgs):
    method: Literal["spearman", "pearson", "tau_a"] = "spearman"
    #: how subjects' RDMs are pooled for the ceilings: mean dissimilarity, or mean rank (rsatoolbox, Spearman)
    ceiling_pool: Literal["mean", "rank"] = "mean"
    n_boot: int = Field(500, ge=0)
    ci: float = Field(0.95, gt=0, lt=1)
    #: subjects: percentile bootstrap of the per-subject values (contains its estimate); stimuli: BC bootstrap
    #: over images (biased by duplicated images, Schütt et al. 2023; kept for comparison)
    ci_over: Literal["stimuli", "subjects"] = "subjects"
    n_perm: int = Field(1000, ge=0, description="stimulus-label permutations for the p-value (0: none)")


RSA_R2 = PluginSpec(
    id="rsa_r2",
    kind="metric",
    version="4",  # 4: ROI rows' CI from the raw replicates only (3 mixed in the % scale)
    summary="Algonauts 2019 score: mean squared Spearman (or Pearson/τa) r over subjects, % of the upper noise "
            "ceiling (devkit), held-out image folds, t-test, subject bootstrap CI, permutation p",
    args=RSAArgs,
    consumes=frozenset({MODEL_RDMS, RDMS}),
    produces=frozenset({SCORES}),
)


class HierarchyArgs(PluginArgs):
    #: ideal level per ROI; default: the dataset's ``roi_levels``, else V1 < V2&V3 < OPA < EBA
    roi_levels: dict[str, float] | None = None
    #: map levels onto [0, 1] so an ideal layer ↔ ROI alignment has slope 1 whatever the number of ROIs
    normalise_levels: bool = True
    n_boot: int = Field(1000, ge=0)
    ci: float = Field(0.95, gt=0, lt=1)


class ConfidenceArgs(PluginArgs):
    n_boot: int = Field(1000, ge=0)
    ci: float = Field(0.95, gt=0, lt=1)


HIERARCHY_SLOPE = PluginSpec(
    id="hierarchy_slope",
    kind="metric",
    version="1",
    summary="hierarchy slope/intercept/R² of the layer selector's centre of mass vs ROI level; depth per ROI",
    args=HierarchyArgs,
    consumes=frozenset({LAYER_WEIGHTS}),
    produces=frozenset({SCORES}),
)


SELECTOR_CONFIDENCE = PluginSpec(
    id="selector_confidence",
    kind="metric",
    version="1",
    summary="layer-selector confidence 1 − H(w)/log L per unit, ROI means with a unit bootstrap CI",
    args=ConfidenceArgs,
    consumes=frozenset({LAYER_WEIGHTS}),
    produces=frozenset({SCORES}),
)
