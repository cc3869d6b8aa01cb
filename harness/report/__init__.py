"""``harness report``: the leaderboard as paper figures in one self-contained HTML file.

The report is a client of the leaderboard database: every plotted number comes from a read-only
query on the views in ``leaderboards/*.sql`` or the tables under them (:mod:`harness.report.reader`
records each query so the page's footer shows the SQL behind every figure). The two things the
database does not hold — the brain data itself (subjects' RDMs, voxel coordinates, stimuli) and model
RDMs — are read through the dataset plugins and the token cache in :mod:`harness.report.outside`,
and every caption that uses them says so.

One module per figure (``fig_*.py``); :data:`harness.report.build.FIGURES` lists them in page order.
"""
