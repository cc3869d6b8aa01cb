-- The first screen (`harness leaderboard`, `harness.leaderboard()`): per dataset × ROI, the models ranked by
-- the dataset's primary score, each pretrained model with its random-init control's score beside it.
-- Built on the `leaderboard` view, so it shows what that view shows (current results, subject averages).
--
-- Primary score: the own row (not a `.suffix` row) of every metric whose registry entry is tagged `primary`
-- (`pearson` for voxel data, `algonauts_r2` for RDM data in registry.yaml). A dataset none of whose metrics is
-- tagged falls back to its metrics' own rows that carry a noise ceiling (a brain score, not a selector statistic).
-- Control: the random-init job of the same backbone plugin and arguments (a `random_init: true` twin entry or
-- `--random-init`), same head, dataset, ROI and metric. Random-init models without a pretrained twin keep a
-- row of their own; those with one appear only as its control.
-- in_process: some job behind the row used an entry registered in-process (harness.register).
WITH tagged AS (
    SELECT name AS metric FROM entries WHERE kind = 'metric' AND list_contains(coalesce(tags, []), 'primary')
),
board AS (
    SELECT l.*, position('.' IN l.metric) = 0 AND l.metric IN (SELECT metric FROM tagged) AS is_tagged
    FROM leaderboard l
),
datasets_tagged AS (
    SELECT DISTINCT dataset FROM board WHERE is_tagged
),
scored AS (
    SELECT b.* FROM board b
    WHERE b.is_tagged
       OR (b.dataset NOT IN (SELECT dataset FROM datasets_tagged)
           AND position('.' IN b.metric) = 0 AND b.ceiling IS NOT NULL)
),
identity AS (  -- what a backbone is, beyond its name: plugin and validated arguments of its latest job
    SELECT backbone, random_init,
           arg_max(config -> 'backbone' ->> 'plugin', finished_at) AS plugin,
           arg_max(CAST(config -> 'backbone' -> 'args' AS VARCHAR), finished_at) AS args
    FROM current_jobs WHERE status = 'done'
    GROUP BY backbone, random_init
),
labels AS (
    SELECT dataset, backbone, head, random_init, bool_or(json_exists(config, '$.in_process')) AS in_process
    FROM current_jobs WHERE status = 'done'
    GROUP BY dataset, backbone, head, random_init
),
models AS (
    SELECT s.*, i.plugin, i.args, coalesce(lb.in_process, false) AS in_process
    FROM scored s
    JOIN identity i USING (backbone, random_init)
    LEFT JOIN labels lb USING (dataset, backbone, head, random_init)
),
paired AS (
    SELECT m.*, c.backbone AS control, c.raw AS control_raw, c.normalised AS control_normalised
    FROM models m
    LEFT JOIN models c
      ON NOT m.random_init AND c.random_init AND c.plugin = m.plugin AND c.args = m.args
     AND c.dataset = m.dataset AND c.roi = m.roi AND c.metric = m.metric AND c.head = m.head AND c.images = m.images
    QUALIFY row_number() OVER (PARTITION BY m.dataset, m.roi, m.metric, m.backbone, m.head, m.random_init, m.images
                               ORDER BY c.backbone NULLS LAST) = 1
),
shown AS (
    SELECT p.* FROM paired p
    WHERE NOT p.random_init
       OR NOT EXISTS (SELECT 1 FROM models t
                      WHERE NOT t.random_init AND t.plugin = p.plugin AND t.args = p.args AND t.dataset = p.dataset
                        AND t.roi = p.roi AND t.metric = p.metric AND t.head = p.head AND t.images = p.images)
)
SELECT
    dataset, roi,
    -- held-out-image scores first (issue 10; `images` labels the rest), as in the `leaderboard` view
    rank() OVER (PARTITION BY dataset, roi, metric ORDER BY images = 'held_out' DESC, raw DESC) AS rank,
    backbone, head, metric, random_init, images,
    raw, ci_low, ci_high, normalised, ceiling,
    control, control_raw, control_normalised,
    raw - control_raw AS gain_over_control,
    n_subjects, in_process
FROM shown
