-- Which layers each ROI reads from: mean layer weight per backbone × head × dataset × ROI × layer,
-- with the layer's depth in [0, 1] (layer_index / (n_layers - 1)).
SELECT
    j.dataset,
    j.backbone,
    j.head,
    sel.roi,
    sel.layer,
    sel.layer_index,
    sel.layer_index / greatest(sel.n_layers - 1, 1) AS depth,
    sum(sel.weight) / count(DISTINCT sel.unit) AS mean_weight
FROM selections sel
JOIN jobs j USING (job_id)
WHERE sel.selector = 'layer' AND j.status = 'done'
GROUP BY ALL
