-- Registry entry tags in the results (issue 17): `primary` marks the metric whose own row is a dataset's
-- headline score (the first screen, leaderboards/primary_scores.sql); `in_process` marks entries registered from
-- Python for one session (harness.register) or built on a plugin class registered that way.
ALTER TABLE entries ADD COLUMN tags VARCHAR[];
