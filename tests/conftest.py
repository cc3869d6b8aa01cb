"""Shared fixtures: an isolated HARNESS_HOME/DB per test, the real data root when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _shared_root() -> Path | None:
    env = os.environ.get("HARNESS_DATA_ROOT")
    cands = [Path(env)] if env else []
    cands.append(REPO.parent / "shared" / "data")
    for c in cands:
        if (c / "cichy92").is_dir():
            return c.resolve()
    return None


SHARED_DATA = _shared_root()
needs_shared = pytest.mark.skipif(SHARED_DATA is None, reason="../shared/data (real brain data) is not present")


@pytest.fixture
def shared_data() -> Path:
    if SHARED_DATA is None:
        pytest.skip("../shared/data (real brain data) is not present; set HARNESS_DATA_ROOT")
    return SHARED_DATA


@pytest.fixture
def shared_weights() -> Path:
    if SHARED_DATA is None or not (SHARED_DATA.parent / "weights").is_dir():
        pytest.skip("../shared/weights (real pretrained weights) is not present")
    return SHARED_DATA.parent / "weights"


def isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private HARNESS_HOME and database under ``tmp_path``; the real data root when present."""
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "lb.duckdb"))
    monkeypatch.setenv("HARNESS_CONFIG", str(tmp_path / "no-config.toml"))
    if SHARED_DATA is not None:
        monkeypatch.setenv("HARNESS_DATA_ROOT", str(SHARED_DATA))
    else:
        monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)
    return tmp_path


@pytest.fixture
def harness_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HARNESS_HOME and database; the real data root when present."""
    return isolate_env(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HARNESS_HOME shared across tests so token extraction of the same net/stimuli happens once."""
    return tmp_path_factory.mktemp("shared_home")
