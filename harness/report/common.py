"""Queries several figures share: random-init twins, each dataset's primary metric, ROI order."""

from __future__ import annotations

import pandas as pd

from harness.report.reader import Reader

#: the score a dataset is ranked by on the first screen, first one present wins: the Algonauts 2023
#: ceiling-normalised mean r for voxel data, the Algonauts 2019 score for RDM data, else median r
PRIMARY_METRICS = ("pearson.mean", "algonauts_r2", "pearson")

#: pooled pseudo-ROIs some metrics add (drawn after the real ROIs)
POOLED_ROIS = ("mean", "all")

TWINS_SQL = """
SELECT p.name AS pretrained, r.name AS twin
FROM entries p JOIN entries r
  ON p.kind = 'backbone' AND r.kind = 'backbone' AND p.plugin = r.plugin
 AND p.args::VARCHAR = r.args::VARCHAR AND NOT coalesce(p.random_init, false) AND coalesce(r.random_init, false)
ORDER BY ALL
"""

LEVELS_SQL = """
SELECT j.dataset, s.roi, avg(TRY_CAST(s.extra ->> 'level' AS DOUBLE)) AS level
FROM scores s JOIN jobs j USING (job_id)
WHERE j.status = 'done' AND s.extra ->> 'level' IS NOT NULL
GROUP BY ALL
"""


def twins(reader: Reader) -> dict[str, str]:
    """Random-init control → its pretrained twin (same plugin and arguments, random weights)."""
    df = reader.query(TWINS_SQL, filter_on=())
    return dict(zip(df["twin"], df["pretrained"], strict=True))


def roi_levels(reader: Reader) -> dict[tuple[str, str], float]:
    """(dataset, roi) → the ROI's level in the visual hierarchy as the hierarchy metric recorded it."""
    df = reader.query(LEVELS_SQL)
    return {(d, r): float(v) for d, r, v in df.itertuples(index=False)}


def roi_order(dataset: str, rois: list[str], levels: dict[tuple[str, str], float]) -> list[str]:
    """Shallow → deep by recorded level, then by name; pooled pseudo-ROIs last."""
    def key(r: str) -> tuple[int, float, str]:
        return (r in POOLED_ROIS, levels.get((dataset, r), float("inf")), r)

    return sorted(dict.fromkeys(rois), key=key)


def primary_metric(metrics: pd.Series) -> str | None:
    present = set(metrics)
    return next((m for m in PRIMARY_METRICS if m in present), None)


def bar_order(rows: pd.DataFrame, twin_of: dict[str, str], value: str) -> pd.DataFrame:
    """Pretrained rows best first, each followed by its random-init twin under the same head."""
    rows = rows.copy()
    rows["anchor"] = [twin_of.get(b, b) for b in rows["backbone"]]
    best = rows.groupby(["head", "anchor"])[value].transform("max")
    rows["_best"] = best
    rows["_twin"] = rows["random_init"].astype(bool)
    rows = rows.sort_values(["_best", "head", "anchor", "_twin"], ascending=[False, True, True, True])
    return rows.drop(columns=["_best", "_twin"]).reset_index(drop=True)
