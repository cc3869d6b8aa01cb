-- Ranking per dataset × ROI × metric: one row per backbone × head, raw and noise-normalised with CIs.
-- Job-level rows only (per-subject detail rows of RDM metrics stay in `scores`). Voxel datasets run one
-- job per subject: values and CI bounds are averaged over subjects (each CI is a seeded bootstrap over
-- stimuli, or over units for selector metrics); sd_subjects shows the spread between subjects.
-- `normalised` is in % of the noise ceiling (Algonauts 2019 / 2023 conventions), `ceiling` on raw's scale.
-- Rows a metric could not compute (NaN raw, reason in scores.extra) are left out.
-- Protocol (issue 10): `images` / `subjects` say whether the scored images / subjects were seen while fitting
-- (held_out | seen; 'unknown' for jobs recorded before migration 004). `rank` puts held-out-image scores first
-- and ranks them among themselves; rows on seen images follow, labelled. For RDM metrics `normalised` is the
-- Algonauts 2019 devkit's scale (% of the upper noise ceiling) and `norm_lower` the % of the lower bound.
WITH rows AS (
    SELECT
        j.dataset, s.roi, s.metric, j.backbone, j.head, j.random_init, j.subject,
        coalesce(j.images, 'unknown') AS images, coalesce(j.subjects, 'unknown') AS subjects,
        TRY_CAST(s.extra ->> 'norm_lower' AS DOUBLE) AS norm_lower,
        s.raw, s.ceiling, s.normalised, s.ci_low, s.ci_high, s.n, s.p_value,
        TRY_CAST(s.extra ->> 'norm_ci_low' AS DOUBLE) AS norm_ci_low,
        TRY_CAST(s.extra ->> 'norm_ci_high' AS DOUBLE) AS norm_ci_high,
        TRY_CAST(s.extra ->> 'perm_p' AS DOUBLE) AS perm_p
    FROM scores s
    JOIN jobs j USING (job_id)
    WHERE j.status = 'done' AND coalesce(s.subject, '') = '' AND isfinite(s.raw)
)
SELECT
    dataset,
    roi,
    metric,
    backbone,
    head,
    random_init,
    images,
    subjects,
    avg(raw) AS raw,
    avg(ci_low) AS ci_low,
    avg(ci_high) AS ci_high,
    avg(normalised) AS normalised,
    avg(norm_ci_low) AS norm_ci_low,
    avg(norm_ci_high) AS norm_ci_high,
    avg(ceiling) AS ceiling,
    avg(norm_lower) AS norm_lower,
    stddev_samp(raw) AS sd_subjects,
    count(DISTINCT subject) AS n_subjects,
    max(n) AS n,
    CASE WHEN count(*) = 1 THEN any_value(p_value) END AS p_value,
    CASE WHEN count(*) = 1 THEN any_value(perm_p) END AS perm_p,
    rank() OVER (PARTITION BY dataset, roi, metric ORDER BY images = 'held_out' DESC, avg(raw) DESC) AS rank,
    CASE WHEN avg(normalised) IS NOT NULL
         THEN rank() OVER (PARTITION BY dataset, roi, metric, avg(normalised) IS NULL
                           ORDER BY images = 'held_out' DESC, avg(normalised) DESC)
    END AS rank_normalised
FROM rows
GROUP BY dataset, roi, metric, backbone, head, random_init, images, subjects
