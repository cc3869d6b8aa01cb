-- The data-scaling curve (Yang, Gee & Shi 2024 §5.2, Fig. 10): score against the number of training stimuli,
-- from jobs on `train_subset` dataset entries (registry.yaml: `<dataset>_n<N>`; test set fixed). `dataset` is the
-- wrapped dataset; each (subject, subsample seed) is one job, `score` their mean and `ci` the half-width of the
-- 95 % t interval of that mean (NULL with one job); `share_of_full` = score / the score at the largest n_train
-- of the same head, backbone, dataset, metric and ROI (the n where it first reaches 0.9 is "90 % of full data").
WITH s AS (
    SELECT j.head, j.backbone, j.config->'dataset'->'args'->>'dataset' AS dataset,
           CAST(j.config->'dataset'->'args'->>'n_train' AS INTEGER) AS n_train, j.random_init, sc.metric, sc.roi, sc.raw
    FROM jobs j JOIN scores sc USING (job_id)
    WHERE j.status = 'done' AND j.config->'dataset'->>'plugin' = 'train_subset' AND isfinite(sc.raw)
),
agg AS (
    SELECT head, backbone, dataset, n_train, random_init, metric, roi, count(*) AS n_jobs, avg(raw) AS score,
           CASE WHEN count(*) > 1 THEN stddev_samp(raw) / sqrt(count(*)) * (CASE WHEN count(*) - 1 <= 30 THEN
               [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
                2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
                2.045, 2.042][count(*) - 1] ELSE 1.960 END) END AS ci
    FROM s GROUP BY ALL
)
SELECT a.head, a.backbone, a.dataset, a.n_train, a.metric, a.roi, a.random_init, a.n_jobs, a.score, a.ci,
       a.score / nullif(last(a.score ORDER BY a.n_train) OVER w, 0) AS share_of_full
FROM agg a
WINDOW w AS (PARTITION BY a.head, a.backbone, a.dataset, a.random_init, a.metric, a.roi
             ORDER BY a.n_train ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY a.dataset, a.metric, a.roi, a.backbone, a.head, a.n_train
