-- FactorTopy Table 1, the "max" comparison: per dataset × head × ROI, each voxel's best r over all
-- pretrained backbones scored (random-init controls are listed but never set the max), and how far each
-- backbone is from that voxel-wise envelope: `rss` = sqrt(Σ_voxels (max_r − r)²) over the ROI's voxels,
-- `rms` = rss / sqrt(n_voxels) (comparable across ROI sizes). roi = 'all' pools every voxel. Per-voxel r
-- comes from `unit_scores` rows of metric entries built on the `pearson` plugin (voxels keyed by subject).
WITH v AS (
    SELECT j.dataset, j.head, j.subject, u.metric, u.roi, u.unit, j.backbone, j.random_init, u.value
    FROM unit_scores u
    JOIN current_jobs j USING (job_id)
    JOIN entries m ON m.name = split_part(u.metric, '.', 1) AND m.plugin = 'pearson'
    WHERE j.status = 'done' AND isfinite(u.value)
),
mx AS (
    SELECT dataset, head, subject, metric, roi, unit, max(value) AS max_value, count(DISTINCT backbone) AS n_backbones
    FROM v
    WHERE NOT random_init
    GROUP BY ALL
),
both_ AS (
    SELECT v.*, mx.max_value, mx.n_backbones
    FROM v JOIN mx USING (dataset, head, subject, metric, roi, unit)
),
per_roi AS (
    SELECT dataset, head, metric, roi, backbone, random_init, value, max_value, n_backbones FROM both_
    UNION ALL
    SELECT dataset, head, metric, 'all' AS roi, backbone, random_init, value, max_value, n_backbones FROM both_
)
SELECT
    dataset, head, metric, roi, backbone, random_init,
    avg(value) AS mean_r,
    avg(max_value) AS max_mean_r,
    avg(max_value) - avg(value) AS gap,
    sqrt(sum((max_value - value) ^ 2)) AS rss,
    sqrt(avg((max_value - value) ^ 2)) AS rms,
    avg(CASE WHEN value >= max_value THEN 1.0 ELSE 0.0 END) AS frac_voxels_at_max,
    count(*) AS n_voxels,
    max(n_backbones) AS n_backbones,
    rank() OVER (PARTITION BY dataset, head, metric, roi ORDER BY sqrt(sum((max_value - value) ^ 2))) AS rank
FROM per_roi
GROUP BY dataset, head, metric, roi, backbone, random_init
