"""RDM comparisons and the Algonauts 2019 score against scipy, brute force, rsatoolbox and the published formula."""

from __future__ import annotations

import numpy as np
import pytest
from harness_metrics.rdm_compare import (
    COMPARATORS,
    compare_rows,
    condensed_index,
    kendall_tau_a,
    pair_weights,
    permuted_positions,
)
from harness_metrics.rsa import AlgonautsRSA, RSAArgs, _ROIData
from scipy import stats

from harness.contracts import HeadOutput, MetricContext, RDMTargets
from harness.errors import DataError
from harness.scoring import upper

CTX = MetricContext(dataset="toy", subject="all", seed=0)


def _rdm(x: np.ndarray) -> np.ndarray:
    d = 1 - np.corrcoef(x)
    np.fill_diagonal(d, 0)
    return (d + d.T) / 2


def _toy(n_sub: int = 8, n: int = 24, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Subjects share a latent pattern per ROI; the model RDM per subject sees part of it."""
    rng = np.random.default_rng(seed)
    subj, model = {}, {}
    for roi, noise in (("EVC", 1.5), ("IT", 0.8)):
        latent = rng.standard_normal((n, 30))
        subj[roi] = np.stack([_rdm(latent + noise * rng.standard_normal((n, 30))) for _ in range(n_sub)])
        model[roi] = np.stack([_rdm(latent + 2.0 * rng.standard_normal((n, 30))) for _ in range(n_sub)])
    return subj, model


def _brute_tau_a(a: np.ndarray, b: np.ndarray) -> float:
    n, s = len(a), 0.0
    for i in range(n):
        for j in range(i + 1, n):
            s += np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return s / (n * (n - 1) / 2)


def test_comparators_match_scipy_and_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, (3, 45)).astype(float)  # many ties
    b = rng.random((3, 45))
    np.testing.assert_allclose(compare_rows("spearman", a, b), [stats.spearmanr(x, y).statistic for x, y in zip(a, b, strict=True)])
    np.testing.assert_allclose(compare_rows("pearson", a, b), [stats.pearsonr(x, y).statistic for x, y in zip(a, b, strict=True)])
    np.testing.assert_allclose(compare_rows("tau_a", a, b), [_brute_tau_a(x, y) for x, y in zip(a, b, strict=True)], atol=1e-12)
    np.testing.assert_allclose(kendall_tau_a(a[0], a[1]), _brute_tau_a(a[0], a[1]), atol=1e-12)
    assert kendall_tau_a(np.ones(5), b[0, :5]) == 0.0


def test_comparators_match_rsatoolbox_compare() -> None:
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(1)
    a, b = rng.random(66), rng.random(66)
    a[:10] = a[0]  # ties
    ra, rb = rsatoolbox.rdm.RDMs(a[None]), rsatoolbox.rdm.RDMs(b[None])
    for ours, theirs in (("spearman", "spearman"), ("tau_a", "tau-a"), ("pearson", "corr")):
        ref = float(rsatoolbox.rdm.compare(ra, rb, method=theirs)[0, 0])
        assert compare_rows(ours, a, b)[0] == pytest.approx(ref, abs=1e-10), ours


@pytest.mark.parametrize("method", ["spearman", "pearson", "tau_a"])
def test_pair_weights_equal_an_explicit_stimulus_resample(method: str) -> None:
    """Weights cᵢ·cⱼ reproduce the rsatoolbox-style resample: D[b][:, b], pairs k<l of distinct stimuli."""
    rng = np.random.default_rng(2)
    n = 15
    d1, d2 = _rdm(rng.standard_normal((n, 8))), _rdm(rng.standard_normal((n, 8)))
    boot = rng.integers(0, n, n)
    k, l_ = np.triu_indices(n, 1)
    keep = boot[k] != boot[l_]
    x, y = d1[boot][:, boot][k, l_][keep], d2[boot][:, boot][k, l_][keep]
    ref = {"spearman": lambda: stats.spearmanr(x, y).statistic, "pearson": lambda: stats.pearsonr(x, y).statistic,
           "tau_a": lambda: _brute_tau_a(x, y)}[method]()
    w = pair_weights(np.bincount(boot, minlength=n))
    assert compare_rows(method, upper(d1), upper(d2), w)[0] == pytest.approx(ref, abs=1e-10)


def test_algonauts2019_score_is_the_published_formula() -> None:
    subj, model = _toy()
    t = RDMTargets(rdms=subj, subject_ids=[f"s{i}" for i in range(8)])
    scores = AlgonautsRSA(RSAArgs(n_boot=100, n_perm=100), None).score(  # type: ignore[arg-type]
        HeadOutput(layers=("a",), model_rdms=model), t, CTX)
    main = {s.roi: s for s in scores if not s.subject}
    norms = []
    for roi in ("EVC", "IT"):
        su, mu = upper(subj[roi]), upper(model[roi])
        r = np.array([stats.spearmanr(mu[s], su[s]).statistic for s in range(8)])
        r2 = np.mean(r**2)  # R² = mean over subjects of the squared Spearman r
        nc = np.mean([stats.spearmanr(np.delete(su, s, 0).mean(0), su[s]).statistic ** 2 for s in range(8)])
        # the devkit's ceiling: each subject vs the mean of all subjects (upper bound), squared, averaged
        nc_up = np.mean([stats.spearmanr(su.mean(0), su[s]).statistic ** 2 for s in range(8)])
        s = main[roi]
        assert s.raw == pytest.approx(r2, abs=1e-12)
        assert s.ceiling == pytest.approx(nc_up, abs=1e-12) and s.extra["upper_ceiling"] == s.ceiling
        assert s.extra["lower_ceiling"] == pytest.approx(nc, abs=1e-12)
        assert s.normalised == pytest.approx(100 * r2 / nc_up, abs=1e-9)
        assert s.extra["norm_lower"] == pytest.approx(100 * r2 / nc, abs=1e-9)
        assert s.p_value == pytest.approx(stats.ttest_1samp(r, 0, alternative="greater").pvalue)
        per_subject = sorted((x for x in scores if x.subject and x.roi == roi), key=lambda x: x.subject)
        np.testing.assert_allclose([x.extra["r"] for x in per_subject], r, atol=1e-12)
        assert s.ci_low <= s.raw <= s.ci_high
        assert s.extra["norm_ci_low"] <= s.normalised <= s.extra["norm_ci_high"]
        norms.append(100 * r2 / nc_up)
    assert main["mean"].normalised == pytest.approx(np.mean(norms))
    assert main["mean"].raw == pytest.approx((main["EVC"].raw + main["IT"].raw) / 2)


def test_permutation_null_matches_brute_force_relabelling() -> None:
    subj, model = _toy(n_sub=4, n=12, seed=3)
    rng = np.random.default_rng(0)
    perms = [rng.permutation(12) for _ in range(20)]
    lookup = condensed_index(12)
    for method in ("spearman", "pearson", "tau_a"):
        data = _ROIData(COMPARATORS[method], upper(model["IT"]), upper(subj["IT"]), "mean")
        got = data.permutation_null([permuted_positions(p, lookup) for p in perms])
        ref = [np.mean(compare_rows(method, upper(model["IT"][:, p][:, :, p]), upper(subj["IT"]))) for p in perms]
        np.testing.assert_allclose(got, ref, atol=1e-10)


def test_permutation_p_separates_a_true_model_from_a_scrambled_one() -> None:
    subj, model = _toy(n_sub=6, n=20, seed=4)
    t = RDMTargets(rdms=subj, subject_ids=[f"s{i}" for i in range(6)])
    metric = AlgonautsRSA(RSAArgs(n_boot=0, n_perm=199), None)  # type: ignore[arg-type]
    good = {s.roi: s for s in metric.score(HeadOutput(layers=("a",), model_rdms=model), t, CTX) if not s.subject}
    assert good["IT"].extra["perm_p"] == pytest.approx(1 / 200)
    rng = np.random.default_rng(5)
    scrambled = {}
    for roi, m in model.items():
        p = rng.permutation(20)
        scrambled[roi] = m[:, p][:, :, p]
    bad = {s.roi: s for s in metric.score(HeadOutput(layers=("a",), model_rdms=scrambled), t, CTX) if not s.subject}
    assert bad["IT"].extra["perm_p"] > 0.05 and bad["mean"].extra["perm_p"] > 0.05


def test_subject_bootstrap_and_other_methods_run() -> None:
    subj, model = _toy(n_sub=5, n=14, seed=6)
    t = RDMTargets(rdms=subj, subject_ids=[f"s{i}" for i in range(5)])
    out = HeadOutput(layers=("a",), model_rdms=model)
    s = next(x for x in AlgonautsRSA(RSAArgs(ci_over="subjects", n_boot=300, n_perm=0), None).score(out, t, CTX)  # type: ignore[arg-type]
             if x.roi == "IT" and not x.subject)
    assert s.ci_low <= s.raw <= s.ci_high and s.extra["perm_p"] is None
    tau = next(x for x in AlgonautsRSA(RSAArgs(method="tau_a", n_boot=5, n_perm=5), None).score(out, t, CTX)  # type: ignore[arg-type]
               if x.roi == "IT" and not x.subject)
    ref = np.mean([_brute_tau_a(upper(model["IT"])[k], upper(subj["IT"])[k]) ** 2 for k in range(5)])
    assert tau.raw == pytest.approx(ref, abs=1e-12)


def test_mismatched_model_rdms_are_a_clear_error() -> None:
    subj, model = _toy(n_sub=3, n=10)
    t = RDMTargets(rdms=subj, subject_ids=["a", "b", "c"])
    with pytest.raises(DataError, match="no model RDM for ROI"):
        AlgonautsRSA(RSAArgs(), None).score(HeadOutput(layers=("a",), model_rdms={"EVC": model["EVC"]}), t, CTX)  # type: ignore[arg-type]


@pytest.mark.shared
def test_algonauts2019_formula_on_real_cichy92(shared_data) -> None:
    """Real RDMs: score = mean_s Spearman(model, subject)²; NC lower = LOO Spearman² (checked by direct loops)."""
    z = np.load(shared_data / "cichy92" / "rdms.npz")
    subj = {r: z[r].astype(np.float64) for r in ("EVC", "IT")}
    model = {r: np.repeat(subj["IT"].mean(0, keepdims=True), 15, 0) for r in subj}  # the group IT RDM as model
    t = RDMTargets(rdms=subj, subject_ids=[f"sub{i:02d}" for i in range(15)])
    scores = AlgonautsRSA(RSAArgs(n_boot=20, n_perm=20), None).score(  # type: ignore[arg-type]
        HeadOutput(layers=("a",), model_rdms=model), t, CTX)
    main = {s.roi: s for s in scores if not s.subject}
    for roi in ("EVC", "IT"):
        su = upper(subj[roi])
        r = np.array([stats.spearmanr(upper(model[roi][s]), su[s]).statistic for s in range(15)])
        nc = np.mean([stats.spearmanr(np.delete(su, s, 0).mean(0), su[s]).statistic ** 2 for s in range(15)])
        assert main[roi].raw == pytest.approx(np.mean(r**2), abs=1e-10)
        assert main[roi].extra["lower_ceiling"] == pytest.approx(nc, abs=1e-10)
    # PROVENANCE.md reports leave-one-subject-out Spearman reliability EVC 0.239, IT 0.449 (mean r, unsquared)
    from harness.ceilings import rdm_noise_ceiling

    assert rdm_noise_ceiling(upper(subj["EVC"]), squared=False)[0] == pytest.approx(0.239, abs=0.001)
    assert rdm_noise_ceiling(upper(subj["IT"]), squared=False)[0] == pytest.approx(0.449, abs=0.001)
