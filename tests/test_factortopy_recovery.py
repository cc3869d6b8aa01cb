"""FactorTopy and the token baselines on the synthetic ground-truth brain (planted layer, RF, scale mix).

The brain is read out of a small random ResNet-18 (5 layers: stem + 4 stages, at 112 px;
residual branches not zero-initialised, so every stage carries signal) by 4 ROIs whose
planted layers are 0, 1, 3, 4, with spatially local receptive fields (sigma 0.04 → 0.10
of the image) and a high SNR (10 per repeat, 2 repeats: known ceiling r = 0.976).

Head settings: 600 steps and a 32-dimensional bottleneck. The paper's 128 is sized for 12
ViT layers on ~9 000 NSD stimuli; on these 750 training stimuli it still finds the layers,
but its selections stay softer within 600 steps (measured: argmax accuracy 0.96, hierarchy
slope 0.68 against the planted 1.05), which is what the slope criterion penalises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from harness.contracts import HeadInput, HeadOutput, Stimuli, VoxelTargets
from harness.factory import Factory
from harness.kit.scoring import pearson_columns
from tests.helpers import make_factory

pytest.importorskip("timm")

BACKBONE = "resnet18_random"
HEAD_ARGS = {"bottleneck": 32, "max_steps": 600}
REGISTRY: dict[str, Any] = {
    "backbones": {BACKBONE: {"plugin": "timm", "random_init": True, "args": {
        "model": "resnet18", "model_kwargs": {"zero_init_last": False},
        "preprocess": {"resize": 112, "crop": 112, "interpolation": "bilinear"}}}},
    "datasets": {"brain": {"plugin": "synthetic_voxels", "args": {
        "backbone": BACKBONE, "n_stimuli": 1000, "n_subjects": 1, "voxels_per_roi": 50, "snr": 10.0, "n_repeats": 2,
        "readout_grid": 8, "rf_size": [0.04, 0.10]}}},
    "heads": {
        "ft": {"plugin": "factortopy", "args": HEAD_ARGS},
        "ft_no_layer": {"plugin": "factortopy", "args": {**HEAD_ARGS, "layer_selection": "uniform"}},
        "ft_no_space": {"plugin": "factortopy", "args": {**HEAD_ARGS, "space_selection": "mean"}},
        "classtoken_small": {"plugin": "classtoken", "args": HEAD_ARGS},
        "gnet_small": {"plugin": "gnet", "args": {"max_steps": 300, "grid": 8}},
        "patchtoken_small": {"plugin": "patchtoken", "args": {"max_steps": 300, "grid": 4}},
    },
    "metrics": {},
}


@dataclass
class Brain:
    factory: Factory
    stimuli: Stimuli
    tokens: Any
    targets: VoxelTargets
    truth: Any

    def fit(self, head: str) -> HeadOutput:
        h = self.factory.build(self.factory.registry.get(head, "head"))
        return h.fit_predict(HeadInput(targets=self.targets, stimuli=self.stimuli, tokens=self.tokens, seed=0))  # type: ignore[attr-defined]

    def r(self, out: HeadOutput) -> np.ndarray:
        t = self.targets
        return pearson_columns(out.predictions, t.responses[t.test_idx])

    def roi_median(self, r: np.ndarray) -> dict[str, float]:
        rois = np.asarray(self.truth.rois)
        return {roi: float(np.median(r[rois == roi])) for roi in self.truth.roi_names}


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Brain:
    root = tmp_path_factory.mktemp("factortopy_brain")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(root / "home"))
        mp.setenv("HARNESS_CONFIG", str(root / "no-config.toml"))
        f = make_factory(REGISTRY, root)
    ds = f.dataset("brain")
    stim = ds.stimuli()
    tokens = f.tokens_for(BACKBONE, stim)
    return Brain(f, stim, tokens, ds.targets("sub01"), ds.ground_truth("sub01"))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def factortopy(brain: Brain) -> HeadOutput:
    return brain.fit("ft")


def space_error_cells(brain: Brain, out: HeadOutput) -> np.ndarray:
    """Per voxel: distance of the selected location from the planted RF centre, in token cells of the planted
    layer's cached grid (the finer of the two grids involved; the head samples a grid pooled to ≤ 8 × 8)."""
    gt = brain.truth
    sel = {k: np.array([s["value"] for s in out.selections if s["selector"] == k]).reshape(len(gt.rois), -1).mean(1)
           for k in ("space_x", "space_y")}
    err = np.hypot(sel["space_x"] - gt.rf_x, sel["space_y"] - gt.rf_y)
    shapes = brain.tokens.shapes()
    cell = np.array([1.0 / shapes[gt.layers[i]][1] for i in gt.layer_index])
    return err / cell


@pytest.mark.slow
def test_layer_selector_recovers_the_planted_layer(brain: Brain, factortopy: HeadOutput) -> None:
    acc = float((factortopy.layer_weights.argmax(1) == brain.truth.layer_index).mean())
    assert acc >= 0.8, f"layer argmax accuracy {acc:.2f}"


@pytest.mark.slow
def test_space_selector_lands_within_one_token_cell(brain: Brain, factortopy: HeadOutput) -> None:
    med = float(np.median(space_error_cells(brain, factortopy)))
    assert med <= 1.0, f"median space error {med:.2f} token cells"


@pytest.mark.slow
def test_hierarchy_slope_within_20_percent_of_planted(brain: Brain, factortopy: HeadOutput) -> None:
    from harness_metrics.hierarchy import hierarchy_slope, unit_levels

    gt = brain.truth
    levels = unit_levels(list(gt.rois), gt.roi_level)
    planted = hierarchy_slope(gt.layer_weights, levels).slope
    got = hierarchy_slope(factortopy.layer_weights, levels).slope
    assert planted > 0
    assert abs(got - planted) <= 0.2 * planted, f"slope {got:.3f} vs planted {planted:.3f}"


@pytest.mark.slow
def test_brain_score_reaches_the_known_noise_ceiling(brain: Brain, factortopy: HeadOutput) -> None:
    r = brain.r(factortopy)
    ceiling = float(np.median(brain.truth.noise_ceiling_r))
    assert float(np.median(r)) >= 0.9 * ceiling, f"median r {np.median(r):.3f}, ceiling {ceiling:.3f}"


@pytest.mark.slow
def test_paper_ordering_and_space_matters_most_early(brain: Brain, factortopy: HeadOutput) -> None:
    """FactorTopy ≥ no layer selection ≥ classToken; removing space selection costs V1 more than IT."""
    med = {name: float(np.median(brain.r(out))) for name, out in
           (("ft", factortopy), ("no_layer", brain.fit("ft_no_layer")), ("classtoken", brain.fit("classtoken_small")))}
    assert med["ft"] >= med["no_layer"] >= med["classtoken"], med
    full = brain.roi_median(brain.r(factortopy))
    no_space = brain.roi_median(brain.r(brain.fit("ft_no_space")))
    drop = {roi: full[roi] - no_space[roi] for roi in full}
    first, last = brain.truth.roi_names[0], brain.truth.roi_names[-1]
    assert drop[first] > drop[last] and drop[first] > 0, drop
    assert max(drop, key=drop.get) in brain.truth.roi_names[:2], drop


@pytest.mark.slow
def test_gnet_and_patchtoken_baselines_fit_the_brain(brain: Brain, factortopy: HeadOutput) -> None:
    ceiling = float(np.median(brain.truth.noise_ceiling_r))
    gnet = brain.fit("gnet_small")
    patch = brain.fit("patchtoken_small")
    for out in (gnet, patch):
        assert out.predictions.shape == (len(brain.targets.test_idx), len(brain.truth.rois))
    # GNet's pooling fields are free per voxel yet still find the RF (coarser than FactorTopy's point)
    assert float(np.median(space_error_cells(brain, gnet))) <= 2.0
    assert float(np.median(brain.r(gnet))) >= 0.7 * ceiling
    # patchToken keeps the map's layout (flattened) but has no per-voxel location: well above chance, below FactorTopy
    assert 0.3 * ceiling <= float(np.median(brain.r(patch))) <= float(np.median(brain.r(factortopy)))
