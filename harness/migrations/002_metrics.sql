-- Per-unit values behind a score row (each voxel's r, each voxel's layer depth …), written from
-- Score.units. Cross-job views (the ROI "max" table, pooled hierarchy fits) read them.
CREATE TABLE unit_scores (
    job_id VARCHAR,
    metric VARCHAR,
    roi VARCHAR,
    unit VARCHAR,
    value DOUBLE
);
