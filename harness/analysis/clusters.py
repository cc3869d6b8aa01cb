"""Voxels clustered by the channels they read (Yang, Gee & Shi 2024, §4.5 and appendix "Channel Clustering").

Procedure as published: a kernel on the units × channels readout weights, k-means with many
clusters (1 000, or fewer when there are fewer units), then Ward agglomeration of the k-means
centroids down to the requested number of clusters. The kernel trick is made explicit with a
Nyström feature map (scikit-learn), so k-means runs in the kernel's feature space. Default: the
cosine kernel, which compares *which* channels a unit reads, not how strongly. On the planted brain
of tests/test_analyses.py (FactorTopy with ``readout_lr`` 10, SNR 10, brain seeds 3–9;
benchmarks/analysis_cluster_ari.py) its ARI was mean 0.94 (min 0.84), RBF with the median-distance
bandwidth 0.91 (min 0.73), linear 0.96 (min 0.88). Everything is scikit-learn's, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError

KERNELS = ("cosine", "rbf", "linear")


@dataclass(frozen=True)
class ClusterParams:
    k: int = 20
    n_kmeans: int = 1000
    kernel: str = "cosine"
    seed: int = 0

    def name(self) -> str:
        return f"channel_{self.kernel}_k{self.k}"


def kernel_features(x: np.ndarray, kernel: str, seed: int = 0) -> np.ndarray:
    """Nyström feature map of ``kernel`` on the rows of ``x`` (exact when every row is a landmark)."""
    from sklearn.kernel_approximation import Nystroem

    if kernel not in KERNELS:
        raise HarnessError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    x = np.asarray(x, np.float64)
    if kernel == "linear":
        return x
    kw = {}
    if kernel == "rbf":  # bandwidth: the median squared distance between rows (of a 2 000-row sample; scale-free)
        rng = np.random.default_rng(seed)
        s = x if len(x) <= 2000 else x[rng.choice(len(x), 2000, replace=False)]
        d2 = ((s[:, None, :] - s[None, :, :]) ** 2).sum(-1)
        kw["gamma"] = 1.0 / max(float(np.median(d2[np.triu_indices(len(s), 1)])), 1e-12)
    n_comp = min(len(x), 1000)
    return Nystroem(kernel=kernel, n_components=n_comp, random_state=seed, **kw).fit_transform(x)


def cluster_units(x: np.ndarray, p: ClusterParams) -> np.ndarray:
    """Cluster label (0 … k−1) per row of ``x``: kernel features → k-means → Ward on the centroids."""
    from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans

    n = len(x)
    if p.k < 2 or p.k > n:
        raise HarnessError(f"--k must be between 2 and the number of units ({n}), not {p.k}")
    feats = kernel_features(x, p.kernel, p.seed)
    n_km = min(p.n_kmeans, n - 1)
    if n_km > p.k:
        km_cls = MiniBatchKMeans if n > 20000 else KMeans
        km = km_cls(n_clusters=n_km, n_init=3 if km_cls is KMeans else 1, random_state=p.seed).fit(feats)
        centres, fine = km.cluster_centers_, km.labels_
    else:  # too few units for a k-means stage above k: Ward on the units themselves
        centres, fine = feats, np.arange(n)
    ward = AgglomerativeClustering(n_clusters=p.k, linkage="ward").fit(centres)
    return np.asarray(ward.labels_, np.int64)[fine]
