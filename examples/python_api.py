# %% [markdown]
# # harness from Python: plan → run → leaderboard → plot
#
# A cell-by-cell script (`# %%` cells open as a notebook in VS Code / Jupytext). It runs end to end on the
# shared data (`HARNESS_DATA_ROOT=../shared/data`) in about a minute on a laptop CPU, and `tests/test_example_api.py`
# executes it so it cannot rot. Output: a bar plot at `$HARNESS_EXAMPLE_OUT` (default `./harness_example.png`).
#
# The question: how well does a pretrained EfficientNet-Lite0 predict a synthetic brain with planted ground truth
# (voxels, ridge) and human EVC/IT RDMs (Algonauts 2019 "92 images" set, layer-wise RSA), and how much of that
# is the architecture alone (the same net with random weights)?

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a file, not a window: this also runs headless in CI
import matplotlib.pyplot as plt

import harness

print(harness.settings())  # where results and the token cache go: arguments → environment → config file

# %% [markdown]
# ## 1. Plan: which jobs, which are already done, what is skipped and why
# Heads are matched to datasets by what they consume: ridge reads voxels, rsa reads RDMs, so the other two
# pairings appear under "skipped" with the reason.

# %%
plan = harness.plan(backbones=["efficientnet_lite0"], heads=["ridge", "rsa"], datasets=["synthetic", "cichy92"])
print(plan)
plan.to_frame()

# %% [markdown]
# The random-init control on the real set only (a second, smaller plan: a plan crosses all it is given)

# %%
control = harness.plan(backbones=["efficientnet_lite0_random"], heads=["rsa"], datasets=["cichy92"])
print(control)

# %% [markdown]
# ## 2. Run: tokens are extracted once per network × stimulus set (cached), every head fitted and scored,
# one database transaction per job. Rerunning the cell is instant: finished jobs are skipped.

# %%
for p in (plan, control):
    summary = harness.run(p)
    print(summary)
    assert summary.ok, summary.failed

# %% [markdown]
# ## 3. The leaderboard as a DataFrame: per dataset × ROI the top models by the dataset's primary score
# (`pearson` for voxels, `algonauts_r2` for RDMs) with the random-init control's score beside each.

# %%
board = harness.leaderboard()
print(board[["dataset", "roi", "backbone", "head", "metric", "raw", "control", "control_raw", "ceiling"]]
      .to_string(index=False))

# %% [markdown]
# Anything else is SQL on the same (read-only) database, e.g. which layer each ROI reads from:

# %%
layers = harness.sql(
    "SELECT dataset, roi, backbone, layer, round(mean_weight, 2) AS w FROM layer_choice "
    "WHERE mean_weight > 0 ORDER BY dataset, roi, backbone, layer_index"
)
print(layers.to_string(index=False))

# %% [markdown]
# ## 4. Plot: the primary score per dataset × ROI with its bootstrap CI, the noise ceiling (black tick) and,
# where it was run, the random-init control (grey)

# %%
labels = [f"{d}\n{r}" for d, r in zip(board["dataset"], board["roi"], strict=True)]
x = list(range(len(board)))
fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(board)), 3.5))
err = [board["raw"] - board["ci_low"], board["ci_high"] - board["raw"]]
ax.bar([i - 0.2 for i in x], board["raw"], width=0.4, yerr=err, label="efficientnet_lite0", color="tab:blue")
ax.bar([i + 0.2 for i in x], board["control_raw"].fillna(0.0), width=0.4, label="random init", color="tab:gray")
ax.scatter(x, board["ceiling"], marker="_", s=300, color="black", label="noise ceiling", zorder=3)
ax.set_xticks(x, labels, fontsize=7)
ax.set_ylabel("primary score (raw)")
ax.set_title("pearson r (synthetic voxels) and Algonauts R² (cichy92 RDMs)", fontsize=9)
ax.legend(fontsize=7)
fig.tight_layout()
out = Path(os.environ.get("HARNESS_EXAMPLE_OUT", "harness_example.png"))
fig.savefig(out, dpi=120)
print(f"saved {out}")
