"""Entry point of the first-party dataset plugins."""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness_datasets.algonauts2019 import Algonauts2019
from harness_datasets.synthetic import SyntheticVoxels


@hookimpl
def harness_plugins() -> list[type]:
    return [Algonauts2019, SyntheticVoxels]
