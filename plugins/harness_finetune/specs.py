"""What the derived (fine-tuned) backbone declares: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from harness.specs import (
    IMAGES,
    TOKENS,
    PluginArgs,
    PluginSpec,
)


class DerivedArgs(PluginArgs):
    #: the derived folder's name under ``$HARNESS_HOME/derived`` (the content hash of its weights)
    id: str


DERIVED = PluginSpec(
    id="derived",
    kind="backbone",
    version="1",
    summary="a fine-tuned backbone from $HARNESS_HOME/derived: parent architecture + derived safetensors",
    args=DerivedArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
)
