"""The epoch schedule of the shared training loop and FactorTopy's GEMM sampling (fast, CPU).

The bilinear matrix is checked against ``F.grid_sample`` (the reference it replaces) in
values and gradients; the schedule against counts derived from the arguments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness_factortopy.factortopy_head import FactorTopyHead
from harness_factortopy.sampling import bilinear_matrix, sampled_readout

from harness.kit.token_source import TokenSource
from harness.kit.training import LinearDecay, TrainArgs, TrainPlan, fit, linear_decay, steps_per_epoch
from tests.test_trained_heads import build, head_input, random_store, random_targets, small_net


@pytest.mark.parametrize(("h", "w", "k"), [(8, 8, 1), (7, 5, 3), (1, 1, 1), (2, 6, 2)])
def test_bilinear_matrix_matches_grid_sample_values_and_gradients(h: int, w: int, k: int) -> None:
    gen = torch.Generator().manual_seed(h * 100 + w * 10 + k)
    maps = torch.randn(4, 6, h, w, dtype=torch.float64, generator=gen, requires_grad=True)
    # points beyond the outer cell centres too (border padding clamps them)
    pts = (torch.rand(10, k, 2, dtype=torch.float64, generator=gen) * 2.6 - 1.3).requires_grad_()
    readout = torch.randn(6, 10, dtype=torch.float64, generator=gen)
    ref = F.grid_sample(maps, pts.unsqueeze(0).expand(4, -1, -1, -1), mode="bilinear", padding_mode="border",
                        align_corners=False).mean(-1)  # N×C×V
    ref = (ref * readout).sum(1)
    got = sampled_readout(maps, readout, bilinear_matrix(pts, h, w))
    torch.testing.assert_close(got, ref)
    for a, b in zip(torch.autograd.grad(got.sum(), (maps, pts)), torch.autograd.grad(ref.sum(), (maps, pts)), strict=True):
        torch.testing.assert_close(a, b)


def test_linear_decay_in_steps_epochs_or_a_share_of_the_plan() -> None:
    plan = TrainPlan(per_epoch=4, total_steps=600)
    by_share = linear_decay(0.2, plan, fraction=0.5)
    assert by_share.settled == 300 and by_share(150, 0.0) == pytest.approx(0.1) and by_share(300, 0.0) == 0.0
    by_epoch = linear_decay(0.2, plan, epochs=10, fraction=0.5)  # epochs win over the share
    assert by_epoch.settled == 40 and by_epoch(20, 5.0) == pytest.approx(0.1)
    by_step = linear_decay(0.2, plan, steps=100, epochs=10)  # steps win when given
    assert by_step.settled == 100 and by_step(50, 0.0) == pytest.approx(0.1)
    assert linear_decay(0.2, plan, steps=0)(0, 0.0) == 0.0
    assert linear_decay(0.2, plan)(0, 0.0) == 0.0
    # the plan is max_epochs in steps, capped by max_steps: a share of it ends inside the fit either way
    assert TrainPlan.of(637, TrainArgs(max_epochs=150, max_steps=600)) == TrainPlan(19, 600)
    assert TrainPlan.of(153, TrainArgs(max_epochs=150, max_steps=None)) == TrainPlan(4, 600)
    # the defaults: 90 epochs, at most 400 steps (a larger data set gets fewer passes, not more steps)
    assert TrainPlan.of(153, TrainArgs()) == TrainPlan(4, 360)
    assert TrainPlan.of(435, TrainArgs()) == TrainPlan(13, 400)


def test_a_decay_can_end_below_zero_and_stays_there() -> None:
    """FactorTopy's sharpening: the entropy weight goes from +w to a negative end, which the loop must apply
    (a weight ≤ 0 used to be skipped)."""
    plan = TrainPlan(per_epoch=4, total_steps=400)
    d = linear_decay(0.1, plan, fraction=0.5, end=-0.05)
    assert d.settled == 200
    assert d(0, 0.0) == pytest.approx(0.1) and d(100, 0.0) == pytest.approx(0.025)
    assert d(200, 0.0) == pytest.approx(-0.05) and d(399, 0.0) == pytest.approx(-0.05)
    assert linear_decay(0.1, plan, end=-0.05)(0, 0.0) == pytest.approx(-0.05)  # no decay length: the end at once


def _fit(tmp_path: Path, reg: LinearDecay | None = None, **args: object) -> tuple[object, int]:
    store = random_store(tmp_path)
    t = random_targets(store)
    fit_idx, val_idx = np.arange(24), np.arange(24, 30)
    src = TokenSource.from_store(store, np.arange(store.n), fit_idx, "cpu")
    torch.manual_seed(0)
    net = small_net(src, 9, topology=True)
    y = torch.from_numpy((t.responses - t.responses[fit_idx].mean(0)) / t.responses[fit_idx].std(0))
    a = TrainArgs(**args)  # type: ignore[arg-type]
    sched = (lambda plan: reg) if reg is not None else (lambda plan: LinearDecay(0.0, 0))
    return fit(net, src, y, fit_idx, val_idx, a, seed=0, reg_schedule=sched), steps_per_epoch(len(fit_idx), a.batch_size)


def test_schedule_runs_whole_epochs_and_validates_once_per_epoch(tmp_path: Path) -> None:
    res, per_epoch = _fit(tmp_path, batch_size=8, max_epochs=3, patience=100)
    assert per_epoch == 3
    assert res.steps == 9 and res.epochs == pytest.approx(3.0)  # type: ignore[attr-defined]
    assert [s for s, _ in res.history] == [3, 6, 9]  # type: ignore[attr-defined]
    capped, _ = _fit(tmp_path, batch_size=8, max_epochs=3, max_steps=4, patience=100)
    assert capped.steps == 4  # type: ignore[attr-defined]


def test_training_stops_once_validation_stops_improving(tmp_path: Path) -> None:
    """An improvement threshold no run can meet: the loop stops after ``patience`` validations past the first."""
    res, _ = _fit(tmp_path, batch_size=8, max_epochs=50, patience=2, min_delta=10.0)
    assert len(res.history) == 3 and res.steps == 9  # type: ignore[attr-defined]


def test_early_stopping_and_checkpoints_wait_for_the_regulariser_to_settle(tmp_path: Path) -> None:
    """An annealed regulariser ending at step 12: the 4 validations before it neither count towards patience
    nor enter the soup, so the fit runs to 2 validations past step 12 and returns a checkpoint from after it."""
    res, _ = _fit(tmp_path, reg=LinearDecay(0.1, 12), batch_size=8, max_epochs=50, patience=2, min_delta=10.0, soup=1)
    assert [s for s, _ in res.history] == [3, 6, 9, 12, 15, 18]  # type: ignore[attr-defined]
    assert res.best_step >= 12  # type: ignore[attr-defined]


def test_cpu_preload_is_standardised_once_and_matches_streaming(tmp_path: Path) -> None:
    store = random_store(tmp_path)
    need, stats = np.arange(store.n), np.arange(25)
    pre = TokenSource.from_store(store, need, stats, "cpu")
    stream = TokenSource.from_store(store, need, stats, "cpu", budget_bytes=0)
    assert pre.preloaded and all(d.standardised for d in pre._data)
    idx = np.array([5, 0, 39])
    for a, b in zip(pre.batch(idx), stream.batch(idx), strict=True):
        torch.testing.assert_close(a.local, b.local)
        torch.testing.assert_close(a.global_, b.global_)


def test_factortopy_reports_epochs(tmp_path: Path) -> None:
    store = random_store(tmp_path)
    out = build(FactorTopyHead, {"max_epochs": 2, "batch_size": 8}).fit_predict(head_input(store, random_targets(store)))  # type: ignore[attr-defined]
    assert out.info["epochs"] == pytest.approx(2.0)


def test_channel_pcs_auto_scales_with_the_fit_stimuli() -> None:
    from harness_factortopy.specs import FactorTopyArgs
    from pydantic import ValidationError

    from harness.kit.train_args import auto_pcs

    assert auto_pcs("auto", 153) == 16  # the default synthetic brain
    assert auto_pcs("auto", 638) == 63  # the recovery brain (1 000 stimuli)
    assert auto_pcs(24, 153) == 24 and auto_pcs(None, 153) is None
    assert FactorTopyArgs().channel_pcs == "auto" and TrainArgs().channel_pcs is None
    for bad in (0, -3, "some"):
        with pytest.raises(ValidationError):
            FactorTopyArgs(channel_pcs=bad)
