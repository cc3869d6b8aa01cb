-- The jobs of each name's current configuration: a job counts only if its backbone, head, dataset (with
-- the data digest) and every metric it scored match what `entries.config` records for those names (the
-- registry at their latest run). Editing an argument or a dataset file therefore replaces that name's
-- results in every view instead of averaging old and new; the older jobs stay in `jobs`. Whether a
-- backbone ran with random weights is a run option, kept in `random_init`, not part of the comparison.
-- Names recorded before `entries.config` existed (NULL) match any job, as before.
SELECT j.*
FROM jobs j
LEFT JOIN entries b ON b.name = j.backbone
LEFT JOIN entries h ON h.name = j.head
LEFT JOIN entries d ON d.name = j.dataset
WHERE (b.config IS NULL OR json_merge_patch(j.config -> 'backbone', '{"random_init": null}')
                           = json_merge_patch(b.config, '{"random_init": null}'))
  AND (h.config IS NULL OR json(j.config -> 'head') = json(h.config))
  AND (d.config IS NULL OR json(j.config -> 'dataset') = json(d.config))
  AND NOT EXISTS (
      SELECT 1
      FROM json_each(j.config -> 'metrics') jm
      JOIN entries m ON m.name = jm.key
      WHERE m.config IS NOT NULL AND json(jm.value) <> json(m.config)
  )
