-- Fine-tune deltas: each derived (fine-tuned) backbone next to its base on the same dataset × head × ROI × metric.
-- Base and derived are linked by `entries.parent` (set by `harness finetune`); job-level scores (subject = '') are
-- averaged over subject jobs as in `leaderboard`. Every metric appears, so the hierarchy-slope metric's rows carry
-- its shift as `delta_raw`. layer_com: centre of mass of the ROI's layer weights over depth in [0, 1]
-- (0 = first tapped layer, 1 = deepest); layer_shift > 0 means the ROI reads deeper layers after fine-tuning.
WITH scored AS (
    SELECT j.backbone, j.head, j.dataset, s.roi, s.metric,
           avg(s.raw) AS raw, avg(s.normalised) AS normalised, count(DISTINCT j.subject) AS n_subjects
    FROM scores s
    JOIN current_jobs j USING (job_id)
    WHERE j.status = 'done' AND coalesce(s.subject, '') = ''
    GROUP BY ALL
),
com AS (
    SELECT j.backbone, j.head, j.dataset, sel.roi,
           sum(sel.weight * sel.layer_index / greatest(sel.n_layers - 1, 1)) / sum(sel.weight) AS layer_com
    FROM selections sel
    JOIN current_jobs j USING (job_id)
    WHERE sel.selector = 'layer' AND j.status = 'done' AND sel.weight > 0
    GROUP BY ALL
),
pairs AS (
    SELECT e.name AS derived, e.parent AS base, e.meta ->> 'task' AS task
    FROM entries e
    WHERE e.kind = 'backbone' AND e.parent IS NOT NULL
)
SELECT
    p.task,
    b.dataset,
    b.head,
    b.roi,
    b.metric,
    p.base,
    p.derived,
    b.raw AS base_raw,
    d.raw AS derived_raw,
    d.raw - b.raw AS delta_raw,
    b.normalised AS base_normalised,
    d.normalised AS derived_normalised,
    d.normalised - b.normalised AS delta_normalised,
    cb.layer_com AS base_layer_com,
    cd.layer_com AS derived_layer_com,
    cd.layer_com - cb.layer_com AS layer_shift,
    f.probe_accuracy AS task_probe_acc,
    f.val_accuracy AS task_finetuned_acc
FROM pairs p
JOIN scored b ON b.backbone = p.base
JOIN scored d ON d.backbone = p.derived AND d.head = b.head AND d.dataset = b.dataset AND d.roi = b.roi
    AND d.metric = b.metric
LEFT JOIN com cb ON cb.backbone = p.base AND cb.head = b.head AND cb.dataset = b.dataset AND cb.roi = b.roi
LEFT JOIN com cd ON cd.backbone = p.derived AND cd.head = b.head AND cd.dataset = b.dataset AND cd.roi = b.roi
LEFT JOIN finetunes f ON f.derived = p.derived
