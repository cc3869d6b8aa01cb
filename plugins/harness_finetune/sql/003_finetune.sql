-- Fine-tunes (`harness finetune`): one row per derived backbone, its task and task accuracies.
-- Scores of derived backbones live in `scores` like any other; `entries.parent` links them to their base
-- and the `finetune_deltas` view (leaderboards/finetune_deltas.sql) computes the differences.
CREATE TABLE finetunes (
    derived VARCHAR PRIMARY KEY,   -- registry name of the derived backbone
    derived_id VARCHAR,            -- folder under $HARNESS_HOME/derived (weights content hash)
    parent VARCHAR,
    task VARCHAR,
    task_level VARCHAR,            -- semantic | low-level | …
    task_digest VARCHAR,
    steps INTEGER,
    lr DOUBLE,
    batch_size INTEGER,
    n_per_class INTEGER,
    probe_accuracy DOUBLE,         -- frozen parent + linear probe, validation images
    val_accuracy DOUBLE,           -- after fine-tuning, same validation images
    n_train INTEGER,
    n_val INTEGER,
    wall_s DOUBLE,
    device VARCHAR,
    weights_digest VARCHAR,
    parent_weights VARCHAR,
    recipe JSON,
    path VARCHAR,
    recorded_at TIMESTAMP
);
