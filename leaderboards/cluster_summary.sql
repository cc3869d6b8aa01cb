-- `harness analyze clusters`: per clustering and cluster, its size, ROI composition and mean layer depth
-- (0 = shallowest layer, 1 = deepest, from each unit's layer selector), with the job it was fitted in.
SELECT c.job_id, j.backbone, j.head, j.dataset, j.subject, c.analysis, c.cluster,
       count(*) AS size,
       histogram(c.roi) AS roi_counts,
       mode(c.roi) AS main_roi,
       avg(CASE WHEN c.roi = m.main_roi THEN 1.0 ELSE 0.0 END) AS main_roi_share,
       avg(c.layer_depth) AS mean_layer_depth
FROM clusters c
JOIN jobs j USING (job_id)
JOIN (SELECT job_id, analysis, cluster, mode(roi) AS main_roi FROM clusters GROUP BY ALL) m USING (job_id, analysis, cluster)
GROUP BY ALL
ORDER BY c.job_id, c.analysis, c.cluster
