-- Ranking per dataset × ROI × metric: one row per backbone × head, raw and noise-normalised with CIs.
-- Job-level rows only (per-subject detail rows of RDM metrics stay in `scores`), of each name's current
-- configuration only (`current_jobs`). Voxel datasets run one job per subject: values are means over
-- subjects. CI: with one subject, that job's own 95% bootstrap CI (over stimuli, or units for selector
-- metrics); with several, the 95% t-interval of the mean over subjects (mean ± t(0.975, n−1)·sd/√n), because
-- the subjects are the samples a between-subject mean generalises over, and a bootstrap over 2–8 subjects has
-- too few distinct resamples to cover (averaging each subject's stimulus CI is not a CI of the mean).
-- `ci_method` says which. sd_subjects shows the spread between subjects.
-- `normalised` is in % of the noise ceiling (Algonauts 2019 / 2023 conventions), `ceiling` on raw's scale.
-- Rows a metric could not compute (NaN raw, reason in scores.extra) are left out.
-- Protocol (issue 10): `images` / `subjects` say whether the scored images / subjects were seen while fitting
-- (held_out | seen; 'unknown' for jobs recorded before migration 004). `rank` puts held-out-image scores first
-- and ranks them among themselves; rows on seen images follow, labelled. For RDM metrics `normalised` is the
-- Algonauts 2019 devkit's scale (% of the upper noise ceiling) and `norm_lower` the % of the lower bound.
-- Ties in rank print in a fixed order: the CLI sorts by rank, then backbone, head, random_init.
WITH rows AS (
    SELECT
        j.dataset, s.roi, s.metric, j.backbone, j.head, j.random_init, j.subject,
        s.raw, s.ceiling, s.normalised, s.ci_low, s.ci_high, s.n, s.p_value,
        TRY_CAST(s.extra ->> 'norm_ci_low' AS DOUBLE) AS norm_ci_low,
        TRY_CAST(s.extra ->> 'norm_ci_high' AS DOUBLE) AS norm_ci_high,
        TRY_CAST(s.extra ->> 'perm_p' AS DOUBLE) AS perm_p,
        coalesce(j.images, 'unknown') AS images, coalesce(j.subjects, 'unknown') AS subjects_protocol,
        TRY_CAST(s.extra ->> 'norm_lower' AS DOUBLE) AS norm_lower
    FROM scores s
    JOIN current_jobs j USING (job_id)
    WHERE j.status = 'done' AND coalesce(s.subject, '') = '' AND isfinite(s.raw)
),
subjects AS (  -- one row per subject (jobs of one subject that differ only in run options are averaged)
    SELECT dataset, roi, metric, backbone, head, random_init, images, subjects_protocol, subject,
           avg(norm_lower) AS norm_lower, avg(raw) AS raw, avg(ci_low) AS ci_low, avg(ci_high) AS ci_high, avg(normalised) AS normalised,
           avg(norm_ci_low) AS norm_ci_low, avg(norm_ci_high) AS norm_ci_high, avg(ceiling) AS ceiling,
           max(n) AS n, any_value(p_value) AS p_value, any_value(perm_p) AS perm_p
    FROM rows
    GROUP BY ALL
),
agg AS (
    SELECT
        dataset, roi, metric, backbone, head, random_init, images, subjects_protocol,
        avg(norm_lower) AS norm_lower, avg(raw) AS raw, stddev_samp(raw) AS sd_raw, count(*) AS n_subjects,
        avg(normalised) AS normalised, stddev_samp(normalised) AS sd_normalised, count(normalised) AS n_normalised,
        any_value(ci_low) AS ci_low1, any_value(ci_high) AS ci_high1,
        any_value(norm_ci_low) AS norm_ci_low1, any_value(norm_ci_high) AS norm_ci_high1,
        avg(ceiling) AS ceiling, max(n) AS n,
        any_value(p_value) AS p_value1, any_value(perm_p) AS perm_p1
    FROM subjects
    GROUP BY ALL
),
ci AS (
    SELECT a.*, tr.q975 * sd_raw / sqrt(n_subjects) AS half_raw, tn.q975 * sd_normalised / sqrt(n_normalised) AS half_norm
    FROM agg a
    LEFT JOIN t_quantiles tr ON tr.df = a.n_subjects - 1
    LEFT JOIN t_quantiles tn ON tn.df = a.n_normalised - 1
)
SELECT
    dataset,
    roi,
    metric,
    backbone,
    head,
    random_init,
    images,
    subjects_protocol AS subjects,
    raw,
    CASE WHEN n_subjects = 1 THEN ci_low1 ELSE raw - half_raw END AS ci_low,
    CASE WHEN n_subjects = 1 THEN ci_high1 ELSE raw + half_raw END AS ci_high,
    normalised,
    CASE WHEN n_normalised = 1 THEN norm_ci_low1 WHEN n_normalised > 1 THEN normalised - half_norm END AS norm_ci_low,
    CASE WHEN n_normalised = 1 THEN norm_ci_high1 WHEN n_normalised > 1 THEN normalised + half_norm END AS norm_ci_high,
    ceiling,
    norm_lower,
    sd_raw AS sd_subjects,
    n_subjects,
    n,
    CASE WHEN n_subjects = 1 THEN p_value1 END AS p_value,
    CASE WHEN n_subjects = 1 THEN perm_p1 END AS perm_p,
    rank() OVER (PARTITION BY dataset, roi, metric ORDER BY images = 'held_out' DESC, raw DESC) AS rank,
    CASE WHEN normalised IS NOT NULL
         THEN rank() OVER (PARTITION BY dataset, roi, metric, normalised IS NULL
                           ORDER BY images = 'held_out' DESC, normalised DESC)
    END AS rank_normalised,
    CASE WHEN n_subjects = 1 THEN 'bootstrap' ELSE 't_subjects' END AS ci_method
FROM ci
