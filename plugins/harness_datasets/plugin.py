"""Entry point of the first-party dataset plugins and their registry fragment."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_datasets.algonauts2019 import Algonauts2019
from harness_datasets.algonauts2023 import Algonauts2023
from harness_datasets.cowley_v4 import CowleyV4
from harness_datasets.folder import FolderVoxels
from harness_datasets.kriegeskorte92 import Kriegeskorte92
from harness_datasets.nsd import NSD
from harness_datasets.synthetic import SyntheticRDMs, SyntheticVoxels
from harness_datasets.train_subset import TrainSubset


@hookimpl
def harness_plugins() -> list[type]:
    return [Algonauts2019, Algonauts2023, CowleyV4, FolderVoxels, Kriegeskorte92, NSD, SyntheticVoxels, SyntheticRDMs,
            TrainSubset]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).resolve().parent / "registry.yaml"]
