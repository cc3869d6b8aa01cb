"""Fine-tunes in the leaderboard database: one ``finetunes`` row per derived backbone (task accuracies, recipe)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd

from harness_finetune.derived_store import DerivedManifest

if TYPE_CHECKING:
    from harness.store import Store

COLUMNS = ["derived", "derived_id", "parent", "task", "task_level", "task_digest", "steps", "lr", "batch_size",
           "n_per_class", "probe_accuracy", "val_accuracy", "n_train", "n_val", "wall_s", "device", "weights_digest",
           "parent_weights", "recipe", "path"]


def finetune_row(m: DerivedManifest) -> dict:
    r, recipe = m.results, m.data["recipe"]
    return {
        "derived": m.name, "derived_id": m.id, "parent": m.parent["name"], "task": m.task["id"],
        "task_level": m.task.get("level", ""), "task_digest": m.task["digest"], "steps": recipe["steps"],
        "lr": recipe["lr"], "batch_size": recipe["batch_size"], "n_per_class": recipe["n_per_class"],
        "probe_accuracy": r["probe_accuracy"], "val_accuracy": r["val_accuracy"], "n_train": r["n_train"],
        "n_val": r["n_val"], "wall_s": r["wall_s"], "device": m.data.get("device"),
        "weights_digest": m.data["weights"]["digest"], "parent_weights": m.parent["weights_digest"],
        "recipe": json.dumps(recipe, sort_keys=True), "path": str(m.path),
    }


def record_finetunes(store: Store, manifests: list[DerivedManifest]) -> None:
    """Upsert by derived name (a rerun replaces, never duplicates); migrates the database first."""
    if not manifests:
        return
    store.migrate()
    df = pd.DataFrame([finetune_row(m) for m in manifests], columns=COLUMNS)
    with store.writer() as con:
        con.register("ft_df", df)
        con.execute("DELETE FROM finetunes WHERE derived IN (SELECT derived FROM ft_df)")
        con.execute(f"INSERT INTO finetunes SELECT {', '.join(c if c != 'recipe' else 'recipe::JSON' for c in COLUMNS)}, "
                    "now() FROM ft_df")
