"""Fine-tune analysis: adapt a backbone to a small labelled task, register the result, compare brain scores.

A fine-tune turns a registered backbone into a *derived backbone*: its weights are
stored content-addressed under ``$HARNESS_HOME/derived/<hash>/`` with a manifest
linking parent, task and recipe, and a registry plugin lists those manifests so the
derived net is crossed with every head like any other backbone. The
``finetune_deltas`` view then puts derived and parent scores side by side.

Modules: :mod:`.tasks` (labelled image sets, the ``harness_tasks`` hook),
:mod:`.recipe` (the training recipe), :mod:`.probe` (frozen linear probe),
:mod:`.train` (the loop), :mod:`.derived` (the on-disk store of derived backbones),
:mod:`.pipeline` (registry entry → task → train → save → record).
"""
