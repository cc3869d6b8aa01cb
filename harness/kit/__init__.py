"""The plugin author's kit: helpers plugins build on, kept apart from the framework that runs them.

Plugins import only :mod:`harness.contracts`, :mod:`harness.specs`, :mod:`harness.hookspecs`,
:mod:`harness.errors` and this package (an import-linter contract in ``pyproject.toml`` checks it).

Modules: :mod:`.hooked` (a Backbone from any torch module and a map of tapped submodules),
:mod:`.weights` (safe weight loading, digests, where missing weights go), :mod:`.fetch`
(checksummed, resumable downloads of public data), :mod:`.images` (decode and preprocess
stimuli), :mod:`.scoring` (correlations, RDMs), :mod:`.ceilings` (noise ceilings),
:mod:`.ridge` (cross-validated ridge with per-target alphas), and the shared loop of the
gradient-trained token heads: :mod:`.token_source`, :mod:`.training`, :mod:`.trained_head`.
"""
