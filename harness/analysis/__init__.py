"""Analyses of fitted heads beyond their scores (`harness analyze`): Yang, Gee & Shi 2024's channel
clustering and channel images. Heads opt in through :class:`harness.analysis.readout.ReadsChannels`."""
