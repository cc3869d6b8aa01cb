-- The configuration each registry name had at its latest run (validated args, plugin version, meta; for
-- datasets also the data digest), exactly as it enters the job id. Views compare jobs.config with it, so a
-- leaderboard shows the current configuration of every name while older jobs stay queryable in `jobs`.
ALTER TABLE entries ADD COLUMN config JSON;
