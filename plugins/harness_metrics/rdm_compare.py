"""RDM comparators (Spearman, Pearson, Kendall τa) over condensed RDMs, with multiplicity weights.

A stimulus bootstrap draws stimuli with replacement; an unordered pair of distinct
stimuli {i, j} then appears cᵢ·cⱼ times in the resampled RDM (pairs of a stimulus
with its own copy are dropped, as rsatoolbox does). Rather than materialising the
duplicated vectors, comparators take those counts as weights: Spearman ranks are
recomputed on the weighted multiset from tie groups found once, so a bootstrap
replicate costs O(S·P) and no sort.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats


def pair_weights(counts: np.ndarray) -> np.ndarray:
    """Multiplicity of each condensed pair (i < j) when stimulus i was drawn ``counts[i]`` times."""
    c = np.asarray(counts, dtype=np.float64)
    iu = np.triu_indices(len(c), k=1)
    return c[iu[0]] * c[iu[1]]


def condensed_index(n: int) -> np.ndarray:
    """``n×n`` lookup: the condensed (upper-triangle, k=1) position of pair (i, j); diagonal −1."""
    iu = np.triu_indices(n, k=1)
    idx = np.full((n, n), -1, dtype=np.int64)
    idx[iu] = np.arange(len(iu[0]))
    idx[iu[1], iu[0]] = idx[iu]
    return idx


def permuted_positions(perm: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Condensed positions that relabelling stimuli by ``perm`` sends each pair to (D'[i,j] = D[π i, π j])."""
    iu = np.triu_indices(len(perm), k=1)
    return lookup[perm[iu[0]], perm[iu[1]]]


def weighted_pearson_rows(a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Pearson r of matching rows of ``S×P`` arrays, entries counted ``w`` times."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if w is None:
        w = np.ones(a.shape[-1])
    w = np.asarray(w, dtype=np.float64)
    tot = w.sum()
    ac = a - (a @ w / tot)[..., None]
    bc = b - (b @ w / tot)[..., None]
    num = (ac * bc) @ w
    den = np.sqrt(((ac * ac) @ w) * ((bc * bc) @ w))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def weighted_ranks(groups: np.ndarray, n_groups: int, w: np.ndarray | None) -> np.ndarray:
    """Average (mid) ranks of each entry in the multiset where entry p occurs ``w[p]`` times.

    ``groups``: ``S×P`` tie-group ids in increasing value order (from :func:`tie_groups`).
    """
    s, p = groups.shape
    w = np.ones(p) if w is None else np.asarray(w, dtype=np.float64)
    flat = (groups + (np.arange(s) * n_groups)[:, None]).ravel()
    gw = np.bincount(flat, weights=np.tile(w, s), minlength=s * n_groups)
    mid = (np.cumsum(gw.reshape(s, n_groups), axis=1) - gw.reshape(s, n_groups) / 2.0 + 0.5).ravel()
    return mid[flat].reshape(s, p)


def tie_groups(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense rank − 1 of each entry per row (equal values share a group) and the largest group count."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    dense = stats.rankdata(x, method="dense", axis=-1).astype(np.int64) - 1
    return dense, int(dense.max()) + 1


def kendall_tau_a(a: np.ndarray, b: np.ndarray) -> float:
    """τa = (concordant − discordant) / (n(n−1)/2): ties count as neither (the RSA default of Nili et al. 2014).

    From scipy's O(n log n) τb: τa = τb · sqrt((n0 − n1)(n0 − n2)) / n0, n1/n2 the tied pairs in a/b.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.size
    n0 = n * (n - 1) / 2.0

    def tied_pairs(x: np.ndarray) -> float:
        _, cnt = np.unique(x, return_counts=True)
        return float((cnt * (cnt - 1) / 2.0).sum())

    n1, n2 = tied_pairs(a), tied_pairs(b)
    if n1 == n0 or n2 == n0:
        return 0.0  # a constant vector has no concordant or discordant pair
    tau_b = stats.kendalltau(a, b, variant="b").statistic
    return float(tau_b * np.sqrt((n0 - n1) * (n0 - n2)) / n0)


class Comparator(Protocol):
    #: permutation-equivariant linear view: r(perm) = Pearson of permuted views (None: no fast path)
    linear: bool

    def prepare(self, x: np.ndarray) -> Any: ...
    def rows(self, a: Any, b: Any, w: np.ndarray | None = None) -> np.ndarray: ...
    def view(self, x: np.ndarray) -> np.ndarray: ...
    #: linear comparators only: the vectors whose weighted Pearson r is the comparison, on columns ``keep``
    def weighted_view(self, prepared: Any, w: np.ndarray, keep: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Pearson:
    linear: bool = True

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.atleast_2d(np.asarray(x, dtype=np.float64))

    def rows(self, a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        return weighted_pearson_rows(a, b, w)

    def view(self, x: np.ndarray) -> np.ndarray:
        return self.prepare(x)

    def weighted_view(self, prepared: np.ndarray, w: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return prepared[:, keep]


@dataclass(frozen=True)
class Spearman:
    linear: bool = True

    def prepare(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        return tie_groups(x)

    def rows(self, a: tuple[np.ndarray, int], b: tuple[np.ndarray, int], w: np.ndarray | None = None) -> np.ndarray:
        ra = weighted_ranks(*a, w)
        rb = weighted_ranks(*b, w)
        return weighted_pearson_rows(ra, rb, w)

    def view(self, x: np.ndarray) -> np.ndarray:
        return stats.rankdata(np.atleast_2d(x), axis=-1)

    def weighted_view(self, prepared: tuple[np.ndarray, int], w: np.ndarray, keep: np.ndarray) -> np.ndarray:
        groups, n_groups = prepared
        return weighted_ranks(groups[:, keep], n_groups, w[keep])


@dataclass(frozen=True)
class KendallTauA:
    linear: bool = False

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.atleast_2d(np.asarray(x, dtype=np.float64))

    def rows(self, a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        if w is None:
            return np.array([kendall_tau_a(x, y) for x, y in zip(a, b, strict=True)])
        k = np.asarray(w, dtype=np.int64)
        return np.array([kendall_tau_a(np.repeat(x, k), np.repeat(y, k)) for x, y in zip(a, b, strict=True)])

    def view(self, x: np.ndarray) -> np.ndarray:
        return self.prepare(x)

    def weighted_view(self, prepared: np.ndarray, w: np.ndarray, keep: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Kendall τa is not a Pearson r of any view")


COMPARATORS: dict[str, Comparator] = {"spearman": Spearman(), "pearson": Pearson(), "tau_a": KendallTauA()}


def compare_rows(method: str, a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Correlation of matching rows of two condensed-RDM stacks (a single vector broadcasts)."""
    c = COMPARATORS[method]
    a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
    a2, b2 = np.broadcast_arrays(a2, b2)
    return c.rows(c.prepare(a2), c.prepare(b2), w)
