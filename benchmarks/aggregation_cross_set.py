"""Algonauts 2019 across image sets: train on the 92 set, score on the 118 set, and the reverse.

Compares the learned stage-aggregation head (and the referee's controls) with layer-wise RSA
on ImageNet backbones. Both sides see the target set only at scoring time:

* aggregation: one encoder per ROI trained on *all* 15 source-set subjects (head arg
  ``train_roi`` on the joined dataset ``algonauts2019 sets: [92, 118]``), its RDM of the
  target images predicts every target subject;
* rsa (transfer): the layer whose RDM best matches the source set's mean RDM (Spearman) —
  the rsa head's criterion — predicts every target subject;
* rsa (within): for reference, the rsa head's own protocol on the target set (layer chosen
  leave-one-subject-out on the target's other subjects: it sees the target images);
* ``--within``: each variant as registered on each set alone (its subject folds on the same
  images), compared with rsa (within).

Subjects: both sets have 15 subjects, but nothing in the data or PROVENANCE.md says subject k
of one set is subject k of the other (they come from two studies), so no subject pairing is
used: every target subject is predicted by the same model RDM.

Scores: the registry's ``algonauts_r2`` metric (mean over subjects of squared Spearman r,
% of the upper noise ceiling as the devkit, bootstrap CI); Δ vs rsa (transfer) with a paired bootstrap CI
over target subjects. Stage weights: share of the embedding's variance per stage with 95 %
CIs across channels and across seeds.

Usage::

    HARNESS_DATA_ROOT=/work/shared/data python benchmarks/aggregation_cross_set.py \
        [--backbones efficientnet_lite0 mobilenet_v2] [--seeds 3] [--epochs 20] [--within]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from harness.factory import Factory

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("aggregation", "aggregation_l2norm", "aggregation_earliest", "aggregation_uniform")
SETS = ("92", "118")


def factory() -> Factory:
    from harness.factory import Factory
    from harness.plugins import default_catalog
    from harness.registry import load_registry
    from harness.settings import load_settings

    settings = load_settings().with_overrides(registry=REPO / "registry.yaml")
    if settings.data_root is None:
        sys.exit("set HARNESS_DATA_ROOT (e.g. /work/shared/data)")
    cat = default_catalog()
    return Factory(catalog=cat, registry=load_registry(cat, REPO / "registry.yaml"), settings=settings)


def rsa_models(store: Any, t: Any, n_stim: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Layer-wise RSA on local tokens (the rsa head's features): transfer and within-set model RDMs per ROI."""
    from harness_heads.features import layer_matrix

    from harness.scoring import rdm_from_features, spearman_many, upper

    feats = {layer: layer_matrix(store, layer, "local", None) for layer in store.layers}
    transfer, within, chosen = {}, {}, {}
    for roi in t.rdms:
        src = other(roi)
        layer_rdms = {}
        for which in (roi, src):
            idx = t.stimuli_of(which, n_stim)
            layer_rdms[which] = np.stack([rdm_from_features(f[idx]) for f in feats.values()])
        src_mean = upper(t.rdms[src].mean(0))
        fits = [spearman_many(src_mean, upper(m)[None])[0] for m in layer_rdms[src]]
        best = int(np.nanargmax(fits))
        chosen[roi] = store.layers[best]
        n_sub = len(t.subject_ids)
        transfer[roi] = np.repeat(layer_rdms[roi][best][None], n_sub, axis=0)
        su = upper(t.rdms[roi])
        model_u = upper(layer_rdms[roi])
        out = np.zeros((n_sub, *layer_rdms[roi].shape[1:]))
        for s in range(n_sub):  # the rsa head's leave-one-subject-out choice, on the target set itself
            mean_o = np.delete(su, s, axis=0).mean(0)
            out[s] = layer_rdms[roi][int(np.nanargmax([spearman_many(mean_o, m[None])[0] for m in model_u]))]
        within[roi] = out
    return transfer, within, chosen


def other(roi: str) -> str:
    s, name = roi.split("/", 1)
    return f"{SETS[1 - SETS.index(s)]}/{name}"


def score(f: Any, model_rdms: dict[str, np.ndarray], t: Any, only: str | None = None) -> dict[str, dict[str, Any]]:
    """The registry's algonauts_r2 metric, one image set at a time (each set's ROIs share its stimuli)."""
    from harness.contracts import HeadOutput, MetricContext, RDMTargets

    metric = f.build(f.registry.get("algonauts_r2", "metric"))
    res: dict[str, dict[str, Any]] = {roi: {"subj": {}} for roi in t.rdms}
    for set_name in (only,) if only else SETS:
        rois = [r for r in t.rdms if r.startswith(f"{set_name}/")]
        part = RDMTargets(rdms={r: t.rdms[r] for r in rois}, subject_ids=t.subject_ids)
        out = HeadOutput(layers=(), model_rdms={r: model_rdms[r] for r in rois})
        for s in metric.score(out, part, MetricContext(dataset=f"cichy{set_name}", subject="all", seed=0)):
            if s.roi not in res:
                continue
            if s.subject:
                res[s.roi]["subj"][s.subject] = s.raw
            elif s.metric == metric.spec.id:
                res[s.roi].update(raw=s.raw, lo=s.ci_low, hi=s.ci_high, ceiling=s.ceiling, norm=s.normalised)
    return res


def within_set(f: Any, entry: Any, bb: Any, bb_name: str, v: str) -> dict[str, dict[str, Any]]:
    """The entry exactly as registered, on each set alone; ROIs renamed ``<set>/<roi>`` to line up with the rest."""
    from harness.contracts import HeadInput, RDMTargets

    res: dict[str, dict[str, Any]] = {}
    for set_name in SETS:
        ds = f.build(f.registry.get(f"cichy{set_name}", "dataset"))
        t1 = ds.targets("all")
        t0, c0 = time.perf_counter(), time.process_time()
        out = f.build(entry).fit_predict(HeadInput(targets=t1, stimuli=ds.stimuli(), backbone=bb, seed=0))
        print(f"[{bb_name}] {v} within cichy{set_name}: {time.perf_counter() - t0:.0f} s wall, "
              f"{time.process_time() - c0:.0f} s cpu", flush=True)
        joined = RDMTargets(rdms={f"{set_name}/{r}": x for r, x in t1.rdms.items()}, subject_ids=t1.subject_ids)
        res.update(score(f, {f"{set_name}/{r}": x for r, x in out.model_rdms.items()}, joined, only=set_name))
    return res


def paired_delta(a: dict[str, float], b: dict[str, float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    keys = sorted(a)
    d = np.array([a[k] - b[k] for k in keys])
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="override the entries' epochs")
    ap.add_argument("--within", action="store_true",
                    help="also run the variants as registered on each set alone (subject folds on the same images)")
    args = ap.parse_args()

    from harness.contracts import HeadInput
    from harness.specs import RegistryEntry

    f = factory()
    ds = f.build(RegistryEntry(name="cichy92_118", kind="dataset", plugin="algonauts2019", args={"sets": list(SETS)}))
    stim, t = ds.stimuli(), ds.targets("all")
    t.validate(len(stim), "cichy92_118")
    train_roi = {roi: other(roi) for roi in t.rdms}
    print(f"data: {len(stim)} images ({', '.join(f'{r}: {t.rdms[r].shape}' for r in t.rdms)}); "
          f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}; load avg {os.getloadavg()[0]:.1f}")
    rows: list[tuple[str, str, str, dict[str, Any], str]] = []
    weights: list[tuple[str, str, str, dict[str, Any]]] = []
    for bb_name in args.backbones:
        bb = f.backbone(bb_name)
        t0, c0 = time.perf_counter(), time.process_time()
        store = f.tokens_for(bb_name, stim)
        transfer, within, chosen = rsa_models(store, t, len(stim))
        print(f"[{bb_name}] rsa: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s cpu; "
              f"layers chosen on the source set: {chosen}", flush=True)
        res = {"rsa (transfer)": score(f, transfer, t), "rsa (within, LOSO)": score(f, within, t)}
        for v in args.variants:
            base = f.registry.get(v, "head")
            extra = {"train_roi": train_roi, "n_seeds": args.seeds}
            if args.epochs is not None and base.args.get("epochs", 1) != 0:
                extra["epochs"] = args.epochs
            entry = base.model_copy(update={"args": {**base.args, **extra}})
            head = f.build(entry)
            t0, c0 = time.perf_counter(), time.process_time()
            out = head.fit_predict(HeadInput(targets=t, stimuli=stim, backbone=bb, seed=0))
            print(f"[{bb_name}] {v}: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s cpu "
                  f"(features {out.info['timing_s']['features']:.0f} s)", flush=True)
            res[v] = score(f, out.model_rdms, t)
            for roi in t.rdms:
                weights.append((bb_name, v, roi, out.info["stage_weights"][roi]))
            if args.within:
                res[f"{v} (within)"] = within_set(f, base, bb, bb_name, v)
        for method, r in res.items():
            ref = "rsa (within, LOSO)" if method.endswith("(within)") else "rsa (transfer)"
            for roi in t.rdms:
                d = paired_delta(r[roi]["subj"], res[ref][roi]["subj"]) if method != "rsa (transfer)" else None
                rows.append((bb_name, roi, method, r[roi], "" if d is None else f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]"))
        f.release(bb_name)

    print("\nscore = mean over test-set subjects of Spearman r² (algonauts_r2); CI: the metric's bootstrap; "
          "Δ: paired bootstrap over subjects vs rsa (transfer), or vs rsa (within, LOSO) for '(within)' rows.\n"
          "Rows without '(within)' were fit on the other image set only (train→test); '(within)' rows saw the test "
          "images (other subjects' RDMs of them).")
    print(f"{'backbone':<19}{'train→test ROI':<17}{'method':<32}{'r²':>8}  {'95% CI':<19}{'% ceil':>7}  Δ vs rsa (transfer)")
    for bb_name, roi, method, r, delta in rows:
        label = f"{other(roi).split('/')[0]}→{roi}" if "within" not in method else f"{roi}"
        ci = f"[{r['lo']:.4f}, {r['hi']:.4f}]" if r.get("lo") is not None else ""
        norm = f"{r['norm']:.1f}" if r.get("norm") is not None else ""
        print(f"{bb_name:<19}{label:<17}{method:<32}{r['raw']:>8.4f}  {ci:<19}{norm:>7}  {delta}")
    print("\nstage weights (share of embedding variance) of the transfer encoders: mean [95% CI channels] [95% CI seeds]")
    for bb_name, v, roi, sw in weights:
        parts = [f"{k}={x['mean']:.2f}[{x['ci_channels'][0]:.2f},{x['ci_channels'][1]:.2f}]"
                 f"[{x['ci_seeds'][0]:.2f},{x['ci_seeds'][1]:.2f}]" for k, x in sw.items()]
        print(f"{bb_name:<19}{v:<22}{other(roi)}→{roi}: " + " ".join(parts))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
