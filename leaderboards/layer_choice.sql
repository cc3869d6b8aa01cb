-- Which layers each ROI reads from: the mean layer weight over the ROI's units (voxels, or the ROI
-- itself for RDM heads) and subjects, per backbone × head × dataset × ROI × layer, with the layer's
-- depth in [0, 1] (layer_index / (n_layers - 1)).
WITH units AS (
    SELECT j.dataset, j.backbone, j.head, sel.roi, count(DISTINCT sel.job_id || '/' || sel.unit) AS n_units
    FROM selections sel JOIN current_jobs j USING (job_id)
    WHERE sel.selector = 'layer' AND j.status = 'done'
    GROUP BY ALL
)
SELECT
    j.dataset,
    j.backbone,
    j.head,
    sel.roi,
    sel.layer,
    sel.layer_index,
    sel.layer_index / greatest(sel.n_layers - 1, 1) AS depth,
    sum(sel.weight) / any_value(u.n_units) AS mean_weight
FROM selections sel
JOIN current_jobs j USING (job_id)
JOIN units u ON u.dataset = j.dataset AND u.backbone = j.backbone AND u.head = j.head AND u.roi = sel.roi
WHERE sel.selector = 'layer' AND j.status = 'done'
GROUP BY ALL
