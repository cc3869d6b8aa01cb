-- FactorTopy Table 2: hierarchy slope of the layer selector per backbone × head × dataset, with model size
-- and training data from the backbone's registry meta, so "does alignment rise with size and data?" is a
-- single aggregate over this view. Rows come from every metric entry built on the `hierarchy_slope` plugin
-- (the slope row is the entry's own name, `<entry>.intercept` / `<entry>.r2` the rest); values are means
-- over subject jobs. The slope's CI is, as in `leaderboard`, the job's own unit-bootstrap CI with one subject
-- and the 95 % t-interval of the mean over subjects with several (`slope_ci_method`): averaging each
-- subject's bounds would not be a CI of the mean. `pooled_slope` refits one slope
-- across all subjects' voxels with an intercept per subject (levels rescaled to [0, 1] like the metric).
-- A dataset whose ROIs span one level (e.g. a V4-only recording) keeps its row with slope NULL and `reason`.
WITH h AS (
    SELECT
        j.dataset, j.backbone, j.head, j.random_init, j.subject, j.job_id, m.name AS metric,
        coalesce(nullif(split_part(s.metric, '.', 2), ''), 'slope') AS part,
        CASE WHEN isfinite(s.raw) THEN s.raw END AS raw, s.ci_low, s.ci_high, s.n, s.extra ->> 'reason' AS reason
    FROM scores s
    JOIN current_jobs j USING (job_id)
    JOIN entries m ON m.name = split_part(s.metric, '.', 1) AND m.plugin = 'hierarchy_slope'
    WHERE j.status = 'done' AND s.roi = 'all'
),
fits AS (
    SELECT
        dataset, backbone, head, metric, any_value(random_init) AS random_init,
        avg(raw) FILTER (part = 'slope') AS slope,
        any_value(ci_low) FILTER (part = 'slope') AS slope_ci_low1,
        any_value(ci_high) FILTER (part = 'slope') AS slope_ci_high1,
        count(raw) FILTER (part = 'slope') AS n_slopes,
        avg(raw) FILTER (part = 'intercept') AS intercept,
        avg(raw) FILTER (part = 'r2') AS r2,
        stddev_samp(raw) FILTER (part = 'slope') AS slope_sd_subjects,
        count(DISTINCT subject) AS n_subjects,
        sum(n) FILTER (part = 'slope') AS n_units,
        any_value(reason) FILTER (part = 'slope') AS reason
    FROM h
    WHERE part IN ('slope', 'intercept', 'r2')
    GROUP BY dataset, backbone, head, metric
),
unit_levels AS (  -- per unit: layer depth, its ROI's level rescaled to [0, 1] within the job, centred per subject
    SELECT
        j.dataset, j.backbone, j.head, m.name AS metric, j.subject, u.value AS depth,
        (TRY_CAST(d.extra ->> 'level' AS DOUBLE) - min(TRY_CAST(d.extra ->> 'level' AS DOUBLE)) OVER w)
          / nullif(max(TRY_CAST(d.extra ->> 'level' AS DOUBLE)) OVER w - min(TRY_CAST(d.extra ->> 'level' AS DOUBLE)) OVER w, 0)
          AS level
    FROM unit_scores u
    JOIN current_jobs j USING (job_id)
    JOIN entries m ON m.name = split_part(u.metric, '.', 1) AND m.plugin = 'hierarchy_slope'
    JOIN scores d ON d.job_id = u.job_id AND d.metric = u.metric AND d.roi = u.roi
    WHERE j.status = 'done' AND split_part(u.metric, '.', 2) = 'depth'
    WINDOW w AS (PARTITION BY u.job_id)
),
centred AS (
    SELECT dataset, backbone, head, metric,
           depth - avg(depth) OVER s AS y, level - avg(level) OVER s AS x
    FROM unit_levels
    WHERE level IS NOT NULL
    WINDOW s AS (PARTITION BY dataset, backbone, head, metric, subject)
),
pooled AS (
    SELECT dataset, backbone, head, metric, sum(x * y) / nullif(sum(x * x), 0) AS pooled_slope
    FROM centred
    GROUP BY ALL
)
SELECT
    f.dataset, f.metric, f.backbone, f.head, f.random_init,
    b.meta ->> 'family' AS family,
    TRY_CAST(b.meta ->> 'params_m' AS DOUBLE) AS params_m,
    b.meta ->> 'training_data' AS training_data,
    TRY_CAST(b.meta ->> 'n_train_images' AS BIGINT) AS n_train_images,
    f.slope,
    CASE WHEN f.n_slopes = 1 THEN f.slope_ci_low1 ELSE f.slope - t.q975 * f.slope_sd_subjects / sqrt(f.n_slopes) END
        AS slope_ci_low,
    CASE WHEN f.n_slopes = 1 THEN f.slope_ci_high1 ELSE f.slope + t.q975 * f.slope_sd_subjects / sqrt(f.n_slopes) END
        AS slope_ci_high,
    CASE WHEN f.n_slopes = 1 THEN 'bootstrap_units' WHEN f.n_slopes > 1 THEN 't_subjects' END AS slope_ci_method,
    f.intercept, f.r2, p.pooled_slope,
    f.slope_sd_subjects, f.n_subjects, f.n_units,
    rank() OVER (PARTITION BY f.dataset, f.head, f.metric ORDER BY f.slope DESC NULLS LAST) AS rank,
    f.reason
FROM fits f
LEFT JOIN pooled p USING (dataset, backbone, head, metric)
LEFT JOIN entries b ON b.name = f.backbone
LEFT JOIN t_quantiles t ON t.df = f.n_slopes - 1
