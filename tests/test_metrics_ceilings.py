"""Noise ceilings (harness.kit.ceilings) against brute-force split-halves, the NSD formula, planted truth and rsatoolbox."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from harness.errors import DataError
from harness.kit.ceilings import (
    nc_from_ncsnr,
    nc_to_r,
    ncsnr,
    ncsnr_ceiling,
    noise_ceiling_rdm,
    noise_normalised_r2,
    rdm_noise_ceiling,
    spearman_brown,
    split_half_reliability,
)
from harness.kit.scoring import upper


def _planted(n_stim: int, n_rep: int, n_vox: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance signal plus noise of variance 1/snr per voxel: true NC = 1 / (1 + 1/(snr·R))."""
    rng = np.random.default_rng(seed)
    snr = np.linspace(0.1, 3.0, n_vox)
    reps = rng.standard_normal((n_stim, 1, n_vox)) + rng.standard_normal((n_stim, n_rep, n_vox)) / np.sqrt(snr)
    return reps, snr


def _brute_split_half(reps: np.ndarray) -> np.ndarray:
    """Every split of the repeat slots into halves, loops and np.corrcoef, mean r, then Spearman–Brown."""
    n_rep = reps.shape[1]
    seen, rs = set(), []
    for a in itertools.combinations(range(n_rep), (n_rep + 1) // 2):
        b = tuple(i for i in range(n_rep) if i not in a)
        if frozenset([a, b]) in seen:
            continue
        seen.add(frozenset([a, b]))
        ha, hb = reps[:, list(a)].mean(1), reps[:, list(b)].mean(1)
        rs.append([np.corrcoef(ha[:, v], hb[:, v])[0, 1] for v in range(reps.shape[2])])
    r = np.mean(rs, axis=0)
    return 2 * r / (1 + r)


def test_spearman_brown_formula() -> None:
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.5, 3.0) == pytest.approx(1.5 / 2.0)
    assert spearman_brown(0.0) == 0.0


@pytest.mark.parametrize("n_rep", [2, 4, 5])
def test_split_half_matches_brute_force(n_rep: int) -> None:
    reps, _ = _planted(60, n_rep, 7, seed=n_rep)
    np.testing.assert_allclose(split_half_reliability(reps), _brute_split_half(reps), atol=1e-10)


def test_split_half_two_repeats_is_spearman_brown_of_pearsonr() -> None:
    reps, _ = _planted(50, 2, 5, seed=3)
    ref = [stats.pearsonr(reps[:, 0, v], reps[:, 1, v]).statistic for v in range(5)]
    np.testing.assert_allclose(split_half_reliability(reps), spearman_brown(np.array(ref)), atol=1e-12)


def test_ceilings_recover_planted_nc_with_and_without_missing_repeats() -> None:
    reps, snr = _planted(600, 4, 200)
    true_nc = 1 / (1 + 1 / (snr * 4))
    assert np.abs(split_half_reliability(reps) - true_nc).mean() < 0.03
    assert np.abs(ncsnr_ceiling(reps) - true_nc).mean() < 0.03
    # drop 30 % of the repeats (never the first, so every stimulus keeps one): NC uses mean 1/n over stimuli
    rng = np.random.default_rng(1)
    drop = rng.random(reps.shape[:2]) < 0.3
    drop[:, 0] = False
    holes = reps.copy()
    holes[drop] = np.nan
    n = np.isfinite(holes[:, :, 0]).sum(1)
    true_nc2 = snr / (snr + np.mean(1 / n))
    assert np.abs(ncsnr_ceiling(holes) - true_nc2).mean() < 0.03
    assert np.abs(split_half_reliability(holes) - true_nc2).mean() < 0.04


def test_ncsnr_matches_direct_formula_on_complete_data() -> None:
    reps, _ = _planted(80, 3, 6, seed=5)
    noise_var = reps.var(axis=1, ddof=1).mean(0)
    total_var = reps.reshape(-1, 6).var(axis=0, ddof=1)
    direct = np.sqrt(np.clip(total_var - noise_var, 0, None) / noise_var)
    np.testing.assert_allclose(ncsnr(reps), direct, rtol=1e-10)


def test_nsd_nc_formula_with_mixed_repeat_counts() -> None:
    # NSD: NC = ncsnr² / (ncsnr² + (A/3 + B/2 + C/1) / (A + B + C)) for A, B, C images seen 3, 2, 1 times
    a, b, c, snr = 700, 200, 100, 0.4
    counts = np.array([3] * a + [2] * b + [1] * c)
    expected = snr**2 / (snr**2 + (a / 3 + b / 2 + c / 1) / (a + b + c))
    assert float(nc_from_ncsnr(snr, counts)) == pytest.approx(expected)
    assert float(nc_from_ncsnr(snr, 3)) == pytest.approx(snr**2 / (snr**2 + 1 / 3))


def test_algonauts2023_normalisation() -> None:
    r = np.array([-0.2, 0.5, 0.9, 0.3])
    nc = np.array([0.5, 0.5, 0.5, 0.0])
    out = noise_normalised_r2(r, nc)
    assert out[0] == 0.0 and out[1] == pytest.approx(50.0) and out[2] == 100.0 and np.isnan(out[3])
    np.testing.assert_allclose(nc_to_r([0.25, -0.1]), [0.5, 0.0])


def test_bad_repeats_raise_one_line_errors() -> None:
    with pytest.raises(DataError, match="stimuli × repeats × voxels"):
        split_half_reliability(np.zeros((4, 3)))
    with pytest.raises(DataError, match="at least 2 repeats"):
        split_half_reliability(np.zeros((4, 1, 3)))


def _subject_rdms(n_sub: int = 6, n: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.random((n, n))
    out = []
    for _ in range(n_sub):
        d = base + 0.8 * rng.random((n, n))
        d = (d + d.T) / 2
        np.fill_diagonal(d, 0)
        out.append(d)
    return np.stack(out)


def test_rdm_ceiling_is_the_published_leave_one_out_formula() -> None:
    su = upper(_subject_rdms())
    lower = np.mean([stats.spearmanr(np.delete(su, s, 0).mean(0), su[s]).statistic ** 2 for s in range(len(su))])
    upper_ = np.mean([stats.spearmanr(su.mean(0), su[s]).statistic ** 2 for s in range(len(su))])
    lo, up = noise_ceiling_rdm(su)
    assert lo == pytest.approx(lower, abs=1e-12) and up == pytest.approx(upper_, abs=1e-12)
    assert lo < up


def test_rdm_ceiling_matches_rsatoolbox_boot_noise_ceiling() -> None:
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference.noise_ceiling import boot_noise_ceiling

    su = upper(_subject_rdms(seed=2))
    rdms = rsatoolbox.rdm.RDMs(su, rdm_descriptors={"index": np.arange(len(su))})
    ref_lo, ref_up = boot_noise_ceiling(rdms, method="spearman", rdm_descriptor="index")
    lo, up = rdm_noise_ceiling(su, pool="rank", squared=False)
    assert lo == pytest.approx(ref_lo, abs=1e-10) and up == pytest.approx(ref_up, abs=1e-10)


@pytest.mark.shared
def test_split_half_on_real_cowley_v4_repeats(shared_data) -> None:
    """PROVENANCE.md of cowley_v4 reports split-half (Spearman–Brown) reliability median 0.76 for session 210325."""
    raw = np.load(shared_data / "cowley_v4" / "responses_raw_210325.npy")  # neurons × images × repeats, NaN-padded
    reps = raw.transpose(1, 2, 0)
    rel = split_half_reliability(reps, n_splits=100, seed=0)
    assert np.nanmedian(rel) == pytest.approx(0.76, abs=0.02)
    nc = ncsnr_ceiling(reps)
    assert np.nanmedian(nc) == pytest.approx(0.76, abs=0.02)  # NSD ncsnr: a second estimator of the same quantity
