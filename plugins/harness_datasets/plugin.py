"""Entry point of the first-party dataset plugins and their registry fragment."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_datasets.specs import (
    ALGONAUTS2019,
    ALGONAUTS2023,
    COWLEY_V4,
    FOLDER,
    KRIEGESKORTE92,
    NSD_SPEC,
    SYNTHETIC_RDMS,
    SYNTHETIC_VOXELS,
    TRAIN_SUBSET,
)


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [
        LazyPlugin(ALGONAUTS2019, "harness_datasets.algonauts2019:Algonauts2019"),
        LazyPlugin(ALGONAUTS2023, "harness_datasets.algonauts2023:Algonauts2023"),
        LazyPlugin(COWLEY_V4, "harness_datasets.cowley_v4:CowleyV4"),
        LazyPlugin(FOLDER, "harness_datasets.folder:FolderVoxels"),
        LazyPlugin(KRIEGESKORTE92, "harness_datasets.kriegeskorte92:Kriegeskorte92"),
        LazyPlugin(NSD_SPEC, "harness_datasets.nsd:NSD"),
        LazyPlugin(SYNTHETIC_VOXELS, "harness_datasets.synthetic:SyntheticVoxels"),
        LazyPlugin(SYNTHETIC_RDMS, "harness_datasets.synthetic:SyntheticRDMs"),
        LazyPlugin(TRAIN_SUBSET, "harness_datasets.train_subset:TrainSubset"),
    ]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).resolve().parent / "registry.yaml"]
