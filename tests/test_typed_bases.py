"""Typed head and dataset bases: the target kind is declared once, by the base, and checked once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.contracts import BuildContext, HeadInput, RDMTargets, Stimuli, VoxelTargets
from harness.errors import DataError
from harness.plugins import default_catalog
from harness.settings import load_settings
from harness.specs import RDMS, TOKENS, VOXELS, RegistryEntry


def test_specs_derive_the_target_kind_from_the_base() -> None:
    cat = default_catalog()
    assert cat.get("head", "ridge").spec.consumes == {TOKENS, VOXELS}
    assert cat.get("head", "rsa").spec.consumes == {TOKENS, RDMS}
    assert cat.get("head", "factortopy").spec.consumes == {TOKENS, VOXELS}
    assert cat.get("head", "stage_aggregation").spec.consumes == {"backbone", RDMS}
    assert cat.get("dataset", "synthetic_voxels").spec.produces == {VOXELS}
    # an RDM set derived from the voxel one is an RDM dataset only
    rdm_cls = cat.get("dataset", "synthetic_rdms")
    assert rdm_cls.spec.produces == {RDMS} and rdm_cls.target_kind == RDMS  # type: ignore[attr-defined]
    for kind in ("head", "dataset"):
        for spec in cat.specs(kind):  # type: ignore[arg-type]
            kinds = (spec.consumes if kind == "head" else spec.produces) & {VOXELS, RDMS}
            assert len(kinds) == 1, (spec.id, kinds)


def _input(targets: object, tokens: object = None) -> HeadInput:
    stim = Stimuli.from_array(np.zeros((4, 8, 8, 3), np.uint8))
    return HeadInput(targets=targets, stimuli=stim, tokens=tokens)  # type: ignore[arg-type]


def test_wrong_targets_or_missing_tokens_are_one_line_errors() -> None:
    cat = default_catalog()
    ridge = cat.get("head", "ridge")
    head = ridge(ridge.spec.args(), BuildContext(entry=RegistryEntry(name="r", kind="head", plugin="ridge"),
                                                 settings=load_settings()))
    rdms = RDMTargets(rdms={"IT": np.zeros((2, 4, 4))}, subject_ids=["a", "b"])
    with pytest.raises(DataError, match=r"^head 'r' needs voxel targets, got RDMTargets$"):
        head.fit_predict(_input(rdms))
    vox = VoxelTargets(responses=np.zeros((4, 2)), train_idx=np.arange(2), test_idx=np.arange(2, 4),
                       voxels=pd.DataFrame({"roi": ["V1", "V1"]}))
    with pytest.raises(DataError, match=r"^head 'r' needs cached tokens"):
        head.fit_predict(_input(vox))
