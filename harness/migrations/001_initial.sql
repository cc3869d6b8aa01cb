-- Leaderboard schema v1. Written only by the runner's single writer.
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR,            -- running | done | failed | interrupted
    argv VARCHAR,
    harness_version VARCHAR,
    device VARCHAR,
    host VARCHAR
);
-- One row per registry entry used by a job: lets views show size, training data, parents.
CREATE TABLE entries (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR,
    plugin VARCHAR,
    plugin_version VARCHAR,
    random_init BOOLEAN,
    parent VARCHAR,
    args JSON,
    meta JSON,
    updated_at TIMESTAMP
);
CREATE TABLE jobs (
    job_id VARCHAR PRIMARY KEY,  -- config hash: same config, same id
    run_id VARCHAR,
    backbone VARCHAR,
    head VARCHAR,
    dataset VARCHAR,
    subject VARCHAR,
    status VARCHAR,              -- done | failed
    error VARCHAR,
    wall_s DOUBLE,
    config JSON,
    random_init BOOLEAN,
    weights_digest VARCHAR,
    tokens_key VARCHAR,
    n_excluded INTEGER,          -- targets excluded (e.g. NaN voxels), never silently
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE TABLE scores (
    job_id VARCHAR,
    metric VARCHAR,
    roi VARCHAR,
    subject VARCHAR,
    raw DOUBLE,
    ceiling DOUBLE,
    normalised DOUBLE,
    ci_low DOUBLE,
    ci_high DOUBLE,
    n INTEGER,
    p_value DOUBLE,
    extra JSON
);
-- What heads selected: per voxel/ROI layer weights, chosen alphas, locations, stage weights …
CREATE TABLE selections (
    job_id VARCHAR,
    unit VARCHAR,
    roi VARCHAR,
    selector VARCHAR,
    layer VARCHAR,
    layer_index INTEGER,
    n_layers INTEGER,
    weight DOUBLE,
    value DOUBLE
);
