-- Issue 15: what the Brain-Decodes-Deep-Nets analyses need and write.
-- Files a head saved with its job (e.g. the fitted FactorTopy weights, content-addressed safetensors under
-- $HARNESS_HOME/models): `harness analyze` finds a job's fitted model here. Replaced with the job's other rows.
CREATE TABLE artifacts (
    job_id VARCHAR,
    name VARCHAR,          -- e.g. 'model'
    path VARCHAR,          -- absolute path of the file
    sha256 VARCHAR         -- content hash (the file name's stem)
);
-- `harness analyze clusters`: voxels clustered by their channel selectors (one row per unit and analysis).
CREATE TABLE clusters (
    job_id VARCHAR,        -- the fitted head's job
    analysis VARCHAR,      -- e.g. 'channel_k20': method and number of clusters
    unit VARCHAR,
    roi VARCHAR,
    cluster INTEGER,
    layer_depth DOUBLE,    -- the unit's expected layer index under its layer selector, / (n_layers - 1)
    params JSON,           -- k, n_kmeans, kernel, seed …
    created_at TIMESTAMP
);
-- `harness analyze channels`: the PNGs written per ROI/unit and stimulus, and where each one peaks
-- (for the response map: the token cell whose channel image best predicts the ROI's mean response).
CREATE TABLE channel_images (
    job_id VARCHAR,
    target VARCHAR,        -- 'roi:<name>' or 'unit:<id>'
    stimulus VARCHAR,      -- stimulus id, or '(response map)'
    path VARCHAR,
    peak_x DOUBLE,         -- fractions of the backbone's input crop (0 = left/top), cell centre
    peak_y DOUBLE,
    explained JSON,        -- variance fraction of each principal component of the readout weights
    created_at TIMESTAMP
);
