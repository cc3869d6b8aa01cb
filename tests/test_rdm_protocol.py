"""Issue 10: scores the field can compare — joined sets of any size, the devkit's scale, held-out images,
CIs that contain their estimate, and exported RDMs that re-score to the harness's number.

References are independent: scipy's Spearman r in plain loops, the Algonauts 2019 devkit's formula
re-implemented below (``testSub_fmri.py``: mean over subjects of the squared Spearman r of lower
triangles, % of the published upper noise ceiling), and ground truth planted in simulated subjects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness_metrics.rsa import AlgonautsRSA, RSAArgs, _ci_note
from scipy import stats

from harness.contracts import HeadOutput, MetricContext, RDMFold, RDMTargets
from harness.errors import DataError
from harness.kit.scoring import rdm_from_features
from tests.helpers import make_factory

CTX = MetricContext(dataset="toy", subject="all", seed=0)
#: the Algonauts 2019 devkit's published noise ceilings (upper bound, R² scale) of the training sets
PUBLISHED = {"92": {"EVC": 0.1589, "IT": 0.3075}, "118": {"EVC": 0.1048, "IT": 0.0728}}


def devkit_r2(submission: np.ndarray, targets: np.ndarray) -> float:
    """``testSub_fmri.py``: mean over subjects of Spearman r² between lower triangles (one submitted RDM)."""
    lt = np.tril_indices(submission.shape[0], -1)
    return float(np.mean([stats.spearmanr(submission[lt], t[lt]).statistic ** 2 for t in targets]))


def devkit_ceiling(targets: np.ndarray) -> float:
    """The published ceiling's definition: each subject vs the mean of all subjects, Spearman r², averaged."""
    return devkit_r2(targets.mean(0), targets)


def _rdm(x: np.ndarray) -> np.ndarray:
    return rdm_from_features(x)


def _sets(sizes: dict[str, int], n_sub: int = 6, seed: int = 0) -> tuple[RDMTargets, dict[str, np.ndarray]]:
    """Joined image sets of the given sizes: ROIs ``<set>/EVC``, ``<set>/IT`` with their own stimulus blocks."""
    rng = np.random.default_rng(seed)
    rdms, model, idx, start = {}, {}, {}, 0
    for s, n in sizes.items():
        for roi, noise in (("EVC", 1.5), ("IT", 0.8)):
            latent = rng.standard_normal((n, 20))
            rdms[f"{s}/{roi}"] = np.stack([_rdm(latent + noise * rng.standard_normal((n, 20))) for _ in range(n_sub)])
            model[f"{s}/{roi}"] = np.repeat(_rdm(latent + 2.0 * rng.standard_normal((n, 20)))[None], n_sub, 0)
            idx[f"{s}/{roi}"] = np.arange(start, start + n)
        start += n
    return RDMTargets(rdms=rdms, subject_ids=[f"s{i}" for i in range(n_sub)], stimulus_idx=idx), model


def _main(scores: list) -> dict:
    return {s.roi: s for s in scores if not s.subject}


# ----------------------------------------------------------------------------- joined sets of unequal sizes
@pytest.mark.parametrize("ci_over", ["stimuli", "subjects"])
def test_joined_sets_of_unequal_sizes_score_with_ci_and_permutations(ci_over: str) -> None:
    """92 + 118 + a third size in miniature: bootstrap and permutation draw within each set (the bug: the first
    ROI's stimulus count was used for every ROI); each ROI's score is the one it gets alone."""
    t, model = _sets({"92": 13, "118": 21, "78": 9})
    scores = AlgonautsRSA(RSAArgs(n_boot=60, n_perm=40, ci_over=ci_over), None).score(  # type: ignore[arg-type]
        HeadOutput(layers=("a",), model_rdms=model), t, CTX)
    main = _main(scores)
    lt = {n: np.triu_indices(n, 1) for n in (9, 13, 21)}
    for roi, subj in t.rdms.items():
        iu = lt[subj.shape[1]]
        ref = np.mean([stats.spearmanr(model[roi][s][iu], subj[s][iu]).statistic ** 2 for s in range(6)])
        s = main[roi]
        assert s.raw == pytest.approx(ref, abs=1e-12)
        assert s.ci_low is not None and s.ci_high is not None and s.extra["perm_p"] is not None
        assert s.extra["n_stimuli"] == subj.shape[1]
        if ci_over == "subjects":
            assert s.ci_low <= s.raw <= s.ci_high and s.extra["ci_note"] is None
            # a mean of resampled subjects' r² cannot leave their range (the bug: raw and normalised replicates
            # pooled into one percentile, so the upper bound was on the % scale)
            r2 = [x.raw for x in scores if x.roi == roi and x.subject]
            assert min(r2) <= s.ci_low and s.ci_high <= max(r2)
            assert s.extra["norm_ci_high"] == pytest.approx(100 * s.ci_high / s.ceiling, rel=1e-12)
    assert main["mean"].ci_low is not None and main["mean"].extra["perm_p"] is not None


@pytest.mark.shared
def test_real_92_plus_118_join_scores_on_the_devkit_scale(shared_data: Path, harness_env: Path, tmp_path: Path) -> None:
    """The joined real sets: every resampling runs, ceilings are the devkit's published ones, normalised = devkit %."""
    f = make_factory({"datasets": {"j": {"plugin": "algonauts2019", "args": {"sets": ["92", "118"], "images": "seen"}}}},
                     tmp_path)
    t = f.dataset("j").targets("all")
    # a model that is not the answer: each set's EVC predicted by its IT group RDM and vice versa
    model = {roi: np.repeat(t.rdms[roi.replace("EVC", "X").replace("IT", "EVC").replace("X", "IT")].mean(0)[None], 15, 0)
             for roi in t.rdms}
    scores = AlgonautsRSA(RSAArgs(n_boot=8, n_perm=8, ci_over="stimuli"), None).score(  # type: ignore[arg-type]
        HeadOutput(layers=("a",), model_rdms=model), t, CTX)
    main = _main(scores)
    for roi, subj in t.rdms.items():
        set_name, base = roi.split("/")
        s = main[roi]
        assert round(s.ceiling, 4) == PUBLISHED[set_name][base] == round(devkit_ceiling(subj), 4)
        assert s.raw == pytest.approx(devkit_r2(model[roi][0], subj), abs=1e-12)
        assert s.normalised == pytest.approx(100 * devkit_r2(model[roi][0], subj) / devkit_ceiling(subj), abs=1e-9)
        assert s.extra["norm_lower"] > s.normalised  # the lower bound is smaller, its % larger
        assert s.ci_low is not None and s.extra["perm_p"] is not None


# ----------------------------------------------------------------------------- held-out image folds
def test_fold_blocks_are_scored_among_their_own_images() -> None:
    """Each fold's block: Spearman r² per subject among the block's images, averaged over folds, then subjects."""
    t, model = _sets({"A": 18}, n_sub=5, seed=2)
    blocks = [np.arange(0, 6), np.arange(6, 12), np.arange(12, 18)]
    folds = [RDMFold(roi=r, test=b, train={r: np.setdiff1d(np.arange(18), b)}) for r in t.rdms for b in blocks]
    t.folds = folds
    t.validate(18, "toy")
    m = {r: np.full_like(v, np.nan) for r, v in model.items()}
    for r in m:
        for b in blocks:
            m[r][np.ix_(range(5), b, b)] = model[r][np.ix_(range(5), b, b)]
    out = HeadOutput(layers=("a",), model_rdms=m, info={"protocol": t.protocol()})
    main = _main(AlgonautsRSA(RSAArgs(n_boot=50, n_perm=20), None).score(out, t, CTX))  # type: ignore[arg-type]
    iu = np.triu_indices(6, 1)
    for r, subj in t.rdms.items():
        per = [[stats.spearmanr(m[r][s][b][:, b][iu], subj[s][b][:, b][iu]).statistic ** 2 for b in blocks] for s in range(5)]
        up = [[stats.spearmanr(subj[:, b][:, :, b].mean(0)[iu], subj[s][b][:, b][iu]).statistic ** 2 for b in blocks]
              for s in range(5)]
        assert main[r].raw == pytest.approx(np.mean(per), abs=1e-12)
        assert main[r].ceiling == pytest.approx(np.mean(up), abs=1e-12)
        assert main[r].extra["pairs_per_fold"] == [15, 15, 15]
        assert main[r].extra["images"] == "held_out" and main[r].extra["subjects"] == "seen"
    m["A/IT"][0, 1, 4] = np.nan  # a hole inside a scored block is an error, not a silent NaN score
    with pytest.raises(DataError, match="non-finite"):
        AlgonautsRSA(RSAArgs(n_boot=0, n_perm=0), None).score(  # type: ignore[arg-type]
            HeadOutput(layers=("a",), model_rdms=m), t, CTX)


def test_folds_that_score_training_images_are_rejected() -> None:
    t, _ = _sets({"A": 12, "B": 12}, n_sub=3)
    t.folds = [RDMFold(roi="A/IT", test=np.arange(6), train={"A/EVC": np.arange(4, 12)})]
    with pytest.raises(DataError, match="also training images"):
        t.validate(24, "toy")
    t.folds = [RDMFold(roi="A/IT", test=np.arange(12), train={"C/IT": np.arange(4)})]
    with pytest.raises(DataError, match="no ROI 'C/IT'"):
        t.validate(24, "toy")


@pytest.mark.shared
def test_dataset_protocols_as_data(shared_data: Path, harness_env: Path, tmp_path: Path) -> None:
    """Default: 3 image folds per set, shared by EVC and IT, covering each image once; predict: 118 → 92."""
    f = make_factory({"datasets": {
        "c92": {"plugin": "algonauts2019", "args": {"set": "92"}},
        "x": {"plugin": "algonauts2019", "args": {"sets": ["92", "118"], "predict": {"92": ["118"]}}},
        "both": {"plugin": "algonauts2019", "args": {"sets": ["92", "118"], "predict": {"118": ["92", "118"]}}},
        "k": {"plugin": "kriegeskorte92"}}}, tmp_path)
    t = f.dataset("c92").targets("all")
    t.validate(92, "c92")
    assert t.protocol() == {"images": "held_out", "subjects": "seen"} and t.scored_rois() == ["EVC", "IT"]
    evc = [f_.test for f_ in t.folds if f_.roi == "EVC"]
    assert len(evc) == 3 and sorted(np.concatenate(evc).tolist()) == list(range(92))
    np.testing.assert_array_equal(np.concatenate(evc), np.concatenate([f_.test for f_ in t.folds if f_.roi == "IT"]))
    x = f.dataset("x").targets("all")
    x.validate(210, "x")
    assert x.protocol() == {"images": "held_out", "subjects": "held_out"} and x.scored_rois() == ["92/EVC", "92/IT"]
    assert {k: len(v) for k, v in x.folds[0].train.items()} == {"118/EVC": 118}
    with pytest.raises(DataError, match="must list other sets"):
        f.dataset("both").targets("all")
    k = f.dataset("k").targets("all")
    assert k.protocol()["images"] == "held_out" and len(k.folds) == 3


# ----------------------------------------------------------------------------- CIs that mean what they say
def test_subject_bootstrap_covers_the_planted_truth() -> None:
    """Subjects = a true RDM plus noise; the estimand E_s[r_s²] is found by Monte Carlo over 3000 subjects.
    95 % subject-bootstrap intervals from 15 subjects cover it at close to the nominal rate, and always
    contain their own estimate."""
    rng = np.random.default_rng(0)
    n, n_sub = 16, 15
    latent = rng.standard_normal((n, 12))
    model = _rdm(latent + 1.2 * rng.standard_normal((n, 12)))
    iu = np.triu_indices(n, 1)

    def subjects(k: int) -> np.ndarray:
        return np.stack([_rdm(latent + 1.5 * rng.standard_normal((n, 12))) for _ in range(k)])

    ranks_m = stats.rankdata(model[iu])
    pop = subjects(3000)
    truth = np.mean([np.corrcoef(ranks_m, stats.rankdata(p[iu]))[0, 1] ** 2 for p in pop])
    metric = AlgonautsRSA(RSAArgs(n_boot=300, n_perm=0, ci_over="subjects"), None)  # type: ignore[arg-type]
    hits, reps = 0, 120
    for k in range(reps):
        subj = subjects(n_sub)
        t = RDMTargets(rdms={"IT": subj}, subject_ids=[f"s{i}" for i in range(n_sub)])
        s = _main(metric.score(HeadOutput(layers=("a",), model_rdms={"IT": np.repeat(model[None], n_sub, 0)}), t,
                               MetricContext(dataset="sim", subject="all", seed=k)))["IT"]
        assert s.ci_low <= s.raw <= s.ci_high
        hits += s.ci_low <= truth <= s.ci_high
    assert 0.86 <= hits / reps <= 0.995, hits / reps


def test_an_interval_that_misses_its_estimate_says_why() -> None:
    assert _ci_note(0.5, 0.1, 0.9, "stimuli") is None
    assert "Schütt" in _ci_note(0.00155, 0.00079, 0.00150, "stimuli")
    assert _ci_note(0.3, 0.31, 0.4, "subjects") is not None


# ----------------------------------------------------------------------------- heads follow the folds
class _Tokens:
    """A token store stand-in: two layers of random local maps (``N×C×1×1``)."""

    def __init__(self, feats: dict[str, np.ndarray]) -> None:
        self.feats = feats
        self.layers = tuple(feats)

    def local(self, layer: str) -> np.ndarray:
        return self.feats[layer][:, :, None, None]

    def global_(self, layer: str) -> np.ndarray:
        return self.feats[layer]


def test_rsa_head_chooses_its_layer_on_the_training_images_only() -> None:
    """Set A (trained on) follows layer L1, set B (predicted) follows L0: the head must pick L1, not peek at B."""
    from harness_heads.rsa_head import RSAArgs as HeadArgs
    from harness_heads.rsa_head import RSAHead

    from harness.contracts import HeadInput, Stimuli

    rng = np.random.default_rng(3)
    feats = {"L0": rng.standard_normal((30, 8)), "L1": rng.standard_normal((30, 8))}
    a, b = np.arange(12), np.arange(12, 30)

    def subj(layer: str, idx: np.ndarray) -> np.ndarray:
        clean = _rdm(feats[layer][idx])
        return np.stack([clean + 0.01 * (lambda e: e + e.T)(rng.standard_normal(clean.shape)) * (1 - np.eye(len(idx)))
                         for _ in range(4)])

    t = RDMTargets(rdms={"A/IT": subj("L1", a), "B/IT": subj("L0", b)}, subject_ids=["w", "x", "y", "z"],
                   stimulus_idx={"A/IT": a, "B/IT": b},
                   folds=[RDMFold(roi="B/IT", test=np.arange(18), train={"A/IT": np.arange(12)}, subjects="held_out")])
    t.validate(30, "toy")
    stim = Stimuli(ids=tuple(map(str, range(30))), load=lambda i: None, digest="x")  # type: ignore[arg-type,return-value]
    from harness.contracts import BuildContext
    from harness.settings import load_settings
    from harness.specs import RegistryEntry

    ctx = BuildContext(entry=RegistryEntry(name="rsa", kind="head", plugin="rsa"), settings=load_settings())  # type: ignore[arg-type]
    out = RSAHead(HeadArgs(), ctx).fit_predict(HeadInput(targets=t, stimuli=stim, tokens=_Tokens(feats)))  # type: ignore[arg-type]
    assert [s["layer"] for s in out.selections] == ["L1"]
    assert set(out.model_rdms) == {"B/IT"} and out.info["protocol"] == {"images": "held_out", "subjects": "held_out"}
    np.testing.assert_allclose(out.model_rdms["B/IT"][2], _rdm(feats["L1"][b]), atol=1e-12)
