-- Ranking per dataset × ROI × metric: job-level scores (subject = '') averaged over subjects.
-- CI bounds are averaged across subject jobs (per-subject CIs stay in `scores`).
SELECT
    j.dataset,
    s.roi,
    s.metric,
    j.backbone,
    j.head,
    j.random_init,
    avg(s.raw) AS raw,
    avg(s.ceiling) AS ceiling,
    avg(s.normalised) AS normalised,
    avg(s.ci_low) AS ci_low,
    avg(s.ci_high) AS ci_high,
    count(DISTINCT j.subject) AS n_subjects,
    max(s.n) AS n,
    rank() OVER (PARTITION BY j.dataset, s.roi, s.metric ORDER BY avg(s.raw) DESC) AS rank
FROM scores s
JOIN jobs j USING (job_id)
WHERE j.status = 'done' AND coalesce(s.subject, '') = ''
GROUP BY j.dataset, s.roi, s.metric, j.backbone, j.head, j.random_init
