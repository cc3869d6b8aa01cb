"""`harness report`: every figure's plotted values are the SQL views' values, the page is self-contained,
and it renders in headless Chromium without console errors and with no blank figure.

One small real run (tests/report_run.py) and one report are shared by the whole module.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from tests.conftest import SHARED_DATA, isolate_env

matplotlib = pytest.importorskip("matplotlib", reason="harness report needs matplotlib (pip install 'harness[report]')")

from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.report.build import Report, build_report, write_pngs  # noqa: E402
from harness.report.figure import Section  # noqa: E402
from harness.report.html import render  # noqa: E402
from harness.report.outside import Outside  # noqa: E402
from harness.store import Store  # noqa: E402

pytestmark = pytest.mark.slow  # one small real run, shared by the module

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is absent (Debian package `chromium`; "
                                    ".ci/run installs it)")
#: the RDM dataset's ROI in the small run (Kriegeskorte 92: human IT; the synthetic RDM brain: IT)
RDM_ROI = "hIT" if SHARED_DATA is not None else "IT"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    from tests import report_run

    tmp = tmp_path_factory.mktemp("report_run")
    with pytest.MonkeyPatch.context() as mp:  # module-scoped, so not the function-scoped harness_env
        isolate_env(mp, tmp)
        f, store = report_run.run(tmp)
        rep = build_report(store, "pytest tests/test_report.py", outside=Outside(f))
        html = tmp / "report.html"
        html.write_text(render(rep), encoding="utf-8")
        yield f, store, rep, html


def section(rep: Report, key: str) -> Section:
    return next(s for s in rep.sections if s.key == key)


def axes_by_title(sec: Section) -> dict[str, object]:
    return {ax.get_title(): ax for p in sec.plots for ax in p.figure.axes if ax.get_visible() and ax.get_title()}


def test_every_figure_type_is_drawn(run) -> None:
    _, _, rep, _ = run
    drawn = {s.key for s in rep.sections if s.plots}
    assert drawn == {"leaderboard", "hierarchy", "layers", "stages", "rdms", "brain"}
    assert "finetune" not in drawn and "harness run --finetune" in section(rep, "finetune").note
    for s in rep.sections:
        assert s.sql, f"{s.key}: no SQL recorded"
        assert s.note or ("95 %" in s.caption or s.key in ("layers", "rdms", "brain")), s.key


def test_leaderboard_bars_are_the_view_values(run) -> None:
    _, store, rep, _ = run
    sec = section(rep, "leaderboard")
    axes = axes_by_title(sec)
    for dataset, metric in (("syn", "pearson.mean"), ("rdm", "algonauts_r2")):
        view = store.query("SELECT roi, backbone, head, normalised, norm_ci_low, norm_ci_high FROM leaderboard "
                           "WHERE dataset = ? AND metric = ?", [dataset, metric])
        got = sec.data[dataset].merge(view, on=["roi", "backbone", "head"], suffixes=("", "_view"))
        assert len(got) == len(view) > 0
        np.testing.assert_allclose(got["plotted"], got["normalised_view"], rtol=1e-12)
        np.testing.assert_allclose(got["plotted_lo"], got["norm_ci_low_view"], rtol=1e-12)
        for roi, rows in got.groupby("roi"):
            ax = axes[f"{dataset} · {roi}"]
            bars = sorted((p for p in ax.patches if isinstance(p, Rectangle)), key=lambda p: -p.get_y())
            np.testing.assert_allclose([b.get_width() for b in bars], rows.sort_values("y", ascending=False)["plotted"])
    # every random-init control sits right under its pretrained twin with the same head
    syn = sec.data["syn"]
    for _, r in syn[syn["random_init"].astype(bool)].iterrows():
        above = syn[(syn["roi"] == r["roi"]) & (syn["y"] == r["y"] + 1)].iloc[0]
        assert (above["backbone"], above["head"]) == ("lite0", r["head"])


def test_hierarchy_depths_and_slopes_are_the_view_values(run) -> None:
    _, store, rep, _ = run
    sec = section(rep, "hierarchy")
    view = store.query("SELECT dataset, roi, backbone, head, raw FROM leaderboard WHERE metric = 'hierarchy.depth' "
                       "AND roi NOT IN ('all', 'mean')")
    plotted = pd.concat([d.assign(dataset=k) for k, d in sec.data.items() if k != "scaling"])
    got = plotted.merge(view, on=["dataset", "roi", "backbone", "head"])
    assert len(got) == len(view) > 0
    np.testing.assert_allclose(got["depth"], got["raw"], rtol=1e-12)
    slopes = store.query("SELECT dataset, backbone, head, slope, slope_ci_low, slope_ci_high FROM hierarchy WHERE slope IS NOT NULL")
    axes = axes_by_title(sec)
    for _, s in slopes.iterrows():
        legend = [t.get_text() for t in axes[f"{s['dataset']} · {s['head']}"].get_legend().get_texts()]
        assert f"{s['backbone']}: slope {s['slope']:.2f} [{s['slope_ci_low']:.2f}, {s['slope_ci_high']:.2f}]" in legend
    assert "needs ≥ 3 pretrained backbones" in sec.caption  # one pretrained net here: no scaling panel, said so


def test_layer_heatmaps_are_the_layer_choice_view(run) -> None:
    _, store, rep, _ = run
    sec = section(rep, "layers")
    axes = axes_by_title(sec)
    view = store.query("SELECT dataset, backbone, head, roi, layer, layer_index, mean_weight FROM layer_choice")
    for (dataset, bb, head), v in view.groupby(["dataset", "backbone", "head"]):
        d = sec.data[dataset]
        d = d[(d["backbone"] == bb) & (d["head"] == head)].dropna(subset=["mean_weight"])
        m = d.merge(v, on=["roi", "layer"], suffixes=("", "_view"))
        assert len(m) == len(v)
        np.testing.assert_allclose(m["mean_weight"], m["mean_weight_view"], rtol=1e-12)
        shown = np.asarray(axes[f"{bb} · {head}"].images[0].get_array(), float)
        rois = [t.get_text() for t in axes[f"{bb} · {head}"].get_yticklabels()]
        n_layers = 8  # EfficientNet-Lite0's tapped layers (timm entry): every column drawn, weighted or not
        expect = v.pivot_table(index="roi", columns="layer_index", values="mean_weight").reindex(index=rois, columns=range(n_layers))
        np.testing.assert_allclose(shown, expect.fillna(0.0).to_numpy(), rtol=1e-12)


def test_factortopy_space_and_scale_come_from_selections(run) -> None:
    _, store, rep, _ = run
    sec = section(rep, "layers")
    sel = store.query("SELECT j.dataset, j.backbone, j.head, s.roi, s.value FROM selections s JOIN jobs j USING (job_id) "
                      "WHERE s.selector = 'scale'")
    for (dataset, bb, head), s in sel.groupby(["dataset", "backbone", "head"]):
        scale = sec.data[f"scale:{dataset}:{bb}:{head}"].set_index("roi")
        np.testing.assert_allclose(scale["mean"], s.groupby("roi")["value"].mean().reindex(scale.index), rtol=1e-12)
        assert (scale["ci_low"] <= scale["mean"]).all() and (scale["mean"] <= scale["ci_high"]).all()
        density = sec.data[f"space:{dataset}:{bb}:{head}"]
        np.testing.assert_allclose(density.groupby("roi")["density"].sum(), 1.0)
    xs = store.query("SELECT count(*) AS n FROM selections WHERE selector = 'space_x'")["n"][0]
    ys = store.query("SELECT count(*) AS n FROM selections WHERE selector = 'space_y'")["n"][0]
    assert xs == ys > 0


def test_stage_weight_bars_are_the_selections(run) -> None:
    _, store, rep, _ = run
    sec = section(rep, "stages")
    view = store.query("SELECT j.backbone, j.head, s.roi, s.layer, s.value FROM selections s JOIN jobs j USING (job_id) "
                       "WHERE s.selector = 'stage_weight' AND j.dataset = 'rdm'")
    d = sec.data["rdm:lite0"]
    m = d.merge(view, left_on=["head", "roi", "stage"], right_on=["head", "roi", "layer"])
    assert len(m) == len(view) > 0
    np.testing.assert_allclose(m["weight"], m["value"], rtol=1e-12)
    main = d[d["head"] == "aggregation"]
    assert main[["ci_low_channels", "ci_low_folds", "ci_low_seeds"]].notna().all().all()  # three CI sources
    assert set(d.loc[d["control"], "head"]) == {"aggregation_uniform"}
    ax = axes_by_title(sec)[f"rdm · lite0 · {RDM_ROI}"]
    heights = sorted(p.get_height() for p in ax.patches if isinstance(p, Rectangle))
    np.testing.assert_allclose(heights, sorted(d.loc[d["roi"] == RDM_ROI, "weight"]), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # image pairs no held-out fold predicted stay NaN
def test_rdm_figure_draws_the_stored_model_rdms(run) -> None:
    """The model RDM drawn is the subject-mean of the file the best job stored; the best job is the view's rank 1."""
    from harness import model_rdms

    f, store, rep, _ = run
    shown = section(rep, "rdms").data["rdm"].set_index("roi").loc[RDM_ROI]
    best = store.query("SELECT backbone, head FROM leaderboard WHERE dataset = 'rdm' AND roi = ? AND metric = 'algonauts_r2' "
                       "ORDER BY raw DESC LIMIT 1", [RDM_ROI]).iloc[0]
    assert (shown["backbone"], shown["head"]) == (best["backbone"], best["head"])
    stored = model_rdms.load(f.settings.home, shown["model_rdms"]).rdms[RDM_ROI]
    out = Outside(f)
    np.testing.assert_allclose(out.stored_model_rdm(shown["model_rdms"], RDM_ROI), np.nanmean(stored, axis=0))
    subj = out.subject_rdms("rdm").rdms[RDM_ROI].mean(0)
    iu = np.triu_indices(len(subj), 1)
    model = np.nanmean(stored, axis=0)[iu]
    ok = np.isfinite(model)
    assert np.isclose(shown["spearman_mean_rdm"], spearmanr(model[ok], subj[iu][ok])[0])
    if SHARED_DATA is not None:  # Kriegeskorte 92: sorted by its 12 categories
        assert bool(shown["sorted_by_category"])


def test_brain_map_colours_are_the_selections_and_unit_scores(run) -> None:
    _, store, rep, _ = run
    d = section(rep, "brain").data["syn"]
    sel = store.query("SELECT j.backbone, j.head, j.subject, s.unit, s.layer_index, s.n_layers, s.weight FROM selections s "
                      "JOIN jobs j USING (job_id) WHERE s.selector = 'layer' AND j.dataset = 'syn'")
    best = sel.sort_values("weight").groupby(["backbone", "head", "subject", "unit"]).tail(1)
    best = best.assign(expect=best["layer_index"] / (best["n_layers"] - 1).clip(lower=1))
    m = d.merge(best, on=["backbone", "head", "subject", "unit"])
    assert len(m) == len(d) > 0
    np.testing.assert_allclose(m["depth"], m["expect"], rtol=1e-12)
    r = store.query("SELECT j.backbone, j.head, j.subject, u.unit, u.value FROM unit_scores u JOIN jobs j USING (job_id) "
                    "WHERE u.metric = 'pearson' AND j.dataset = 'syn'")
    m = d.merge(r, on=["backbone", "head", "subject", "unit"])
    np.testing.assert_allclose(m["r"], m["value"], rtol=1e-12)
    assert {"x", "y"} <= set(d.columns) and d[["x", "y"]].notna().all().all()
    # the synthetic brain is a sheet, not a surface: no surface view, and the caption says why
    assert "syn: no surface view, its units are not fsaverage vertices" in section(rep, "brain").caption


def test_filters_and_bad_names(run) -> None:
    _, store, _, _ = run
    rep = build_report(store, "filtered", datasets=["syn"])
    assert section(rep, "stages").note  # the aggregation head ran on the RDM set only
    assert all("'syn'" in q for q in section(rep, "leaderboard").sql if "FROM leaderboard" in q)
    assert section(rep, "rdms").note and section(rep, "brain").note  # no dataset access: omitted, and said why
    with pytest.raises(HarnessError, match=r"--dataset nope: no finished jobs"):
        build_report(store, "x", datasets=["nope"])


def test_html_is_self_contained_and_reproducible(run) -> None:
    _, store, rep, html = run
    text = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text) and "<script" not in text and "@import" not in text
    imgs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', text)
    assert len(imgs) == sum(len(s.plots) for s in rep.sections)
    runs = store.query("SELECT run_id FROM runs")["run_id"]
    assert all(r in text for r in runs) and rep.registry_digest in text and "harness version" in text
    assert text.count("<details><summary>Figure ") == len(rep.sections)
    assert "FROM leaderboard" in text and "FROM layer_choice" in text


def test_finetune_bars_are_the_finetune_deltas_view(run, tmp_path: Path) -> None:
    """A derived backbone registered as `harness finetune` does (entries.parent, finetunes row), its jobs copied
    from the parent's with scores shifted: the figure draws the view's base and derived values."""
    _, store, _, _ = run
    db = tmp_path / "ft.duckdb"
    shutil.copy(store.path, db)
    ft = Store(db)
    with ft.writer() as con:
        con.execute("INSERT INTO entries SELECT * REPLACE ('lite0_ft' AS name, false AS random_init, 'lite0' AS parent, "
                    "'{\"task\": \"toy\"}'::JSON AS meta) FROM entries WHERE name = 'lite0'")
        con.execute("INSERT INTO scores SELECT s.job_id || '_ft', s.metric, s.roi, s.subject, s.raw * 0.5, s.ceiling, "
                    "s.normalised * 0.5, s.ci_low * 0.5, s.ci_high * 0.5, s.n, s.p_value, s.extra FROM scores s "
                    "JOIN jobs j USING (job_id) WHERE j.backbone = 'lite0' AND j.head = 'ridge'")
        con.execute("INSERT INTO jobs SELECT * REPLACE (job_id || '_ft' AS job_id, 'lite0_ft' AS backbone, false AS random_init) "
                    "FROM jobs WHERE backbone = 'lite0' AND head = 'ridge'")
    from harness.report import fig_finetune
    from harness.report.figure import Context
    from harness.report.reader import Reader

    sec = fig_finetune.build(Context(reader=Reader(ft)))
    view = ft.query("SELECT dataset, head, roi, metric, base_raw, derived_raw, delta_raw FROM finetune_deltas")
    d = sec.data["toy:syn"].merge(view, on=["dataset", "head", "roi", "metric"], suffixes=("", "_view"))
    assert len(d) == len(view) > 0
    np.testing.assert_allclose(d["derived_raw"], d["derived_raw_view"], rtol=1e-12)
    np.testing.assert_allclose(d["delta_raw"], -0.5 * d["base_raw"], rtol=1e-9)
    ax = axes_by_title(sec)["toy · syn · ridge · pearson.mean"]
    heights = sorted(p.get_height() for p in ax.patches if isinstance(p, Rectangle))
    rows = d[d["metric"] == "pearson.mean"]
    np.testing.assert_allclose(heights, sorted([*rows["base_raw"], *rows["derived_raw"]]), rtol=1e-12)


def test_cli_writes_html_and_pngs(run, tmp_path: Path) -> None:
    f, store, rep, _ = run
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_CONFIG": str(tmp_path / "none.toml")}
    out = tmp_path / "r.html"
    p = subprocess.run([sys.executable, "-m", "harness", "--db", str(store.path), "--home", str(f.settings.home),
                        "--registry", str(f.settings.registry), "report", "--out", str(out), "--db-only", "-d", "rdm"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert out.read_text().startswith("<!DOCTYPE html>") and "Figure 4." in out.read_text()
    from typer.testing import CliRunner

    from harness.cli import app

    bad = CliRunner().invoke(app, ["--db", str(store.path), "report", "--format", "pdf"])
    assert isinstance(bad.exception, HarnessError) and "--format must be html or png" in str(bad.exception)
    one = Report(sections=rep.sections[:1], version="", command="", created="", db="")
    pngs = write_pngs(one, tmp_path / "figs", dpi=50)
    assert len(pngs) == len(rep.sections[0].plots) and all(Image.open(x).format == "PNG" for x in pngs)


# ----------------------------------------------------------------------------- headless Chromium
def chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp / 'profile'}",
                           *extra, url], capture_output=True, text=True, timeout=180)


def console_errors(stderr: str) -> list[str]:
    """Console messages and failed loads Chromium logs for the page (a page with no script should log none)."""
    return [ln for ln in stderr.splitlines() if re.search(r"CONSOLE\(\d+\)|Failed to load resource|Uncaught", ln)]


def non_blank(img: Image.Image) -> bool:
    a = np.asarray(img.convert("L"), float)
    return a.std() > 5.0 and (a < 200).mean() > 0.01


@needs_chromium
def test_console_error_detector_sees_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom"); undefinedFunction();</script></body></html>')
    p = chromium(bad.as_uri(), tmp_path, "--dump-dom")
    assert console_errors(p.stderr), p.stderr[-2000:]


@needs_chromium
def test_report_renders_in_headless_chromium(run, tmp_path: Path) -> None:
    _, _, rep, html = run
    p = chromium(html.as_uri(), tmp_path, "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    assert console_errors(p.stderr) == []
    dom = p.stdout
    srcs = re.findall(r'src="data:image/png;base64,([^"]+)"', dom)
    assert len(srcs) == sum(len(s.plots) for s in rep.sections) and "Figure 7." in dom
    for s in srcs:  # every figure image as the browser parsed it: decodes and is not blank
        assert non_blank(Image.open(io.BytesIO(base64.b64decode(s))))
    shot = tmp_path / "shot.png"
    p = chromium(html.as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1300,2400", "--hide-scrollbars")
    assert p.returncode == 0 and console_errors(p.stderr) == []
    assert non_blank(Image.open(shot))


# ----------------------------------------------------------------------------- figure 7 on the fsaverage surface
N_FSAVERAGE = 163842  # vertices per hemisphere of FreeSurfer's fsaverage (ico7)


def surface_board(tmp_path: Path) -> tuple[Store, Outside, dict[str, np.ndarray]]:
    """A real Algonauts 2023 layout (tests/test_datasets_nsd.py's fixture) whose challenge vertices sit on fsaverage —
    most on fsaverage5's vertices (index < 10242), three per hemisphere beyond — with an fsaverage sphere for the flat
    map, and a hand-written leaderboard whose units are that dataset's voxel ids: layer selections and r per unit."""
    pytest.importorskip("nibabel")
    import nibabel as nib

    from harness.report.fig_brain import N_FSAVERAGE5
    from tests.helpers import make_factory
    from tests.test_datasets_nsd import a23_fixture

    rng = np.random.default_rng(7)
    root, fsdir = tmp_path / "a23", tmp_path / "fsaverage"
    n_v = {"lh": 40, "rh": 30}
    a23_fixture(root, n_v=n_v)
    fs_index = {}
    for h, n in n_v.items():
        idx = np.sort(np.r_[rng.choice(N_FSAVERAGE5, n - 3, replace=False), rng.choice(np.arange(N_FSAVERAGE5, N_FSAVERAGE), 3)])
        mask = np.zeros(N_FSAVERAGE, np.int64)
        mask[idx] = 1
        np.save(root / "subj01" / "roi_masks" / f"{h}.all-vertices_fsaverage_space.npy", mask)
        fs_index[h] = idx
        (fsdir / "surf").mkdir(parents=True, exist_ok=True)
        nib.freesurfer.write_geometry(str(fsdir / "surf" / f"{h}.sphere"), rng.standard_normal((N_FSAVERAGE, 3)) * 50,
                                      np.array([[0, 1, 2]]))
    f = make_factory({"datasets": {"a23": {"plugin": "algonauts2023", "args": {"root": str(root), "fsaverage": str(fsdir)}}}},
                     tmp_path)
    units = [str(u) for u in f.dataset("a23").targets("subj01").voxels["voxel_id"]]
    store = Store(tmp_path / "lb.duckdb")
    store.migrate()
    store.upsert_entries([{"name": "pearson", "kind": "metric", "plugin": "pearson", "plugin_version": "1", "random_init": False,
                           "parent": None, "args": {}, "meta": {}, "tags": ["primary"]}])
    now = pd.Timestamp("2025-01-01")
    for bb in ("net_a", "net_b"):
        jid = f"{bb}-a23"
        weights = rng.dirichlet(np.ones(4), len(units))
        sel = [{"job_id": jid, "unit": u, "roi": "early", "selector": "layer", "layer": f"l{k}", "layer_index": k, "n_layers": 4,
                "weight": float(w[k]), "value": None} for u, w in zip(units, weights, strict=True) for k in range(4)]
        us = [{"job_id": jid, "metric": "pearson", "roi": "early", "unit": u, "value": float(v)}
              for u, v in zip(units, rng.uniform(-0.1, 0.6, len(units)), strict=True)]
        store.write_job({"job_id": jid, "run_id": "r", "backbone": bb, "head": "ridge", "dataset": "a23", "subject": "subj01",
                         "status": "done", "error": None, "wall_s": 1.0, "config": {}, "random_init": False,
                         "weights_digest": None, "tokens_key": None, "n_excluded": 0, "started_at": now, "finished_at": now},
                        [], sel, us)
    return store, Outside(f), fs_index


def coloured_share(png: bytes) -> float:
    """Share of pixels with a saturated colour (the sulcal background and the text are grey)."""
    hsv = np.asarray(Image.open(io.BytesIO(png)).convert("RGB").convert("HSV"), float)
    return float(((hsv[..., 1] > 80) & (hsv[..., 2] > 40)).mean())


def test_brain_surface_values_are_the_selections_on_fsaverage_vertices(tmp_path: Path) -> None:
    pytest.importorskip("nilearn", reason="the surface view needs nilearn (pip install 'harness[report]')")
    from harness.report import fig_brain
    from harness.report.figure import Context
    from harness.report.reader import Reader

    store, outside, fs_index = surface_board(tmp_path)
    sec = fig_brain.build(Context(reader=Reader(store), outside=outside))
    shown = sec.data["surface:a23"]
    bb = shown["backbone"].iloc[0]
    # the view's values, placed by an independent route: unit "lh_00012" is challenge vertex 12 → the fixture's fsaverage index
    sel = store.query("SELECT s.unit, s.layer_index, s.n_layers, s.weight FROM selections s JOIN jobs j USING (job_id) "
                      "WHERE s.selector = 'layer' AND j.backbone = ?", [bb])
    best = sel.sort_values("weight").groupby("unit").tail(1)
    r = store.query("SELECT u.unit, u.value AS r FROM unit_scores u JOIN jobs j USING (job_id) WHERE j.backbone = ?", [bb])
    expect = best.merge(r, on="unit").assign(depth=lambda x: x["layer_index"] / (x["n_layers"] - 1),
                                             hemi=lambda x: x["unit"].str[:2])
    expect["vertex"] = [fs_index[h][int(u[3:])] for h, u in zip(expect["hemi"], expect["unit"], strict=True)]
    on5 = expect[expect["vertex"] < fig_brain.N_FSAVERAGE5]
    m = shown.merge(on5, on=["hemi", "vertex"], suffixes=("", "_view"))
    assert len(m) == len(shown) == len(on5) == 64  # 37 + 27 on fsaverage5; 3 + 3 beyond are left off, and said so
    np.testing.assert_allclose(m["depth"], m["depth_view"], rtol=1e-12)
    np.testing.assert_allclose(m["r"], m["r_view"], rtol=1e-12)
    assert "64 of 70 units on fsaverage5 vertices (6 on fsaverage vertices beyond the first 10242 left off)" in sec.caption
    # the per-vertex arrays handed to nilearn are those values at those vertices, NaN elsewhere
    arrays = fig_brain.surface_arrays(sec.data["a23"][sec.data["a23"]["backbone"] == bb], "depth")
    for h, a in arrays.items():
        got = shown[shown["hemi"] == h]
        assert np.isfinite(a).sum() == len(got)
        np.testing.assert_allclose(a[got["vertex"]], got["depth"], rtol=1e-12)
    surf = next(p for p in sec.plots if p.label == "a23 surface")
    png = surf.png(dpi=60)
    assert non_blank(Image.open(io.BytesIO(png))) and coloured_share(png) > 0.001
    assert [p.label for p in sec.plots] == ["a23", "a23 surface"]  # the flat map stays beside it


def test_brain_surface_degrades_without_nilearn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.report import fig_brain
    from harness.report.figure import Context
    from harness.report.reader import Reader

    store, outside, _ = surface_board(tmp_path)
    monkeypatch.setitem(sys.modules, "nilearn.plotting", None)  # import fails as if nilearn were absent
    sec = fig_brain.build(Context(reader=Reader(store), outside=outside))
    assert [p.label for p in sec.plots] == ["a23"] and "surface:a23" not in sec.data
    assert "a23: no surface view, nilearn is not installed" in sec.caption


def test_shipped_fsaverage5_is_icosahedrally_nested() -> None:
    """Figure 7 draws fsaverage data on nilearn's shipped fsaverage5 by index, which holds because FreeSurfer's meshes
    append each subdivision's vertices after the previous level's (brainder.org 2016; nilearn issue #3415). Checked on
    the shipped mesh itself: the 12 icosahedron corners come first (the only valence-5 vertices), and each vertex past
    the first 2562 (ico4) is an edge midpoint with exactly two neighbours among them, which have none among themselves."""
    pytest.importorskip("nilearn", reason="the surface view needs nilearn (pip install 'harness[report]')")
    from nilearn.datasets import load_fsaverage

    from harness.report.fig_brain import N_FSAVERAGE5, SURFACE_MESH

    for part in ("left", "right"):
        mesh = load_fsaverage(SURFACE_MESH)["sphere"].parts[part]
        assert len(mesh.coordinates) == N_FSAVERAGE5
        f = np.asarray(mesh.faces)
        edges = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [0, 2]]]), axis=1), axis=0)
        valence = np.bincount(edges.ravel(), minlength=N_FSAVERAGE5)
        np.testing.assert_array_equal(np.flatnonzero(valence == 5), np.arange(12))
        old = edges < 2562
        n_old = np.zeros(N_FSAVERAGE5, int)
        np.add.at(n_old, edges[:, 0], old[:, 1])
        np.add.at(n_old, edges[:, 1], old[:, 0])
        assert set(n_old[2562:]) == {2} and set(n_old[:2562]) == {0}
