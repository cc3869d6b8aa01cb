-- Every job with its status, wall time and error (failed jobs are kept, not hidden).
SELECT backbone, head, dataset, subject, status, round(wall_s, 2) AS wall_s, error, random_init, finished_at
FROM jobs
