"""What lets `harness plan` / `weights status` answer without importing model libraries, and why it stays correct.

Library answers are remembered per installed version (a new version never reads an old answer), digests
per file state (an edited file is recomputed), the torch hub folder follows torch's own rule, and the HF
hub cache short-cut only skips look-ups that could not find anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.kit import libfacts
from harness.kit.filememo import memo_by_files
from harness.kit.libfacts import library_fact
from harness.kit.weights import WeightSource, local_snapshot, resolve_weights, torch_hub_dir_from_env


@pytest.fixture
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libfacts, "_memo", {})


def test_a_fact_is_computed_once_per_library_version(tmp_path: Path, fresh_memo: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def ask() -> dict[str, object]:
        calls.append("asked")
        return {"url": "https://x/y.pth", "size": (3, 224, 224)}

    first = library_fact("timm", "cfg:m", ask, tmp_path)
    monkeypatch.setattr(libfacts, "_memo", {})  # a new process reads the file
    again = library_fact("timm", "cfg:m", ask, tmp_path)
    assert first == again == {"url": "https://x/y.pth", "size": [3, 224, 224]}  # the first call answers as a reread
    assert calls == ["asked"]
    monkeypatch.setattr(libfacts, "installed_version", lambda dist: "999.0")  # an upgrade: the old answer is not used
    library_fact("timm", "cfg:m", ask, tmp_path)
    assert calls == ["asked", "asked"]
    assert len(list((tmp_path / "library-facts").glob("timm-*.json"))) == 2


def test_without_cache_or_installed_library_the_question_is_asked_live(tmp_path: Path, fresh_memo: None) -> None:
    calls: list[int] = []
    for _ in range(2):
        library_fact("no-such-distribution-xyz", "q", lambda: calls.append(1) or 1, tmp_path)
        library_fact("timm", "q", lambda: calls.append(1) or 1, None)
    assert len(calls) == 4
    assert not (tmp_path / "library-facts").exists()


def test_file_memo_recomputes_when_a_file_is_rewritten(tmp_path: Path) -> None:
    data = tmp_path / "stimuli.mat"
    data.write_bytes(b"one")
    calls: list[bytes] = []

    def digest() -> str:
        calls.append(data.read_bytes())
        return data.read_bytes().hex()

    cache = tmp_path / "cache"
    assert memo_by_files(cache, [data], "k92:1", digest) == b"one".hex()
    assert memo_by_files(cache, [data], "k92:1", digest) == b"one".hex()
    assert len(calls) == 1
    st = data.stat()
    data.write_bytes(b"two")  # same size, and the old modification time put back: the status change still shows
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert memo_by_files(cache, [data], "k92:1", digest) == b"two".hex()
    assert memo_by_files(cache, [data], "other-args", digest) == b"two".hex()  # the salt is part of the key
    assert len(calls) == 3


def test_file_memo_does_not_hide_a_missing_file(tmp_path: Path) -> None:
    def digest() -> str:
        raise FileNotFoundError("missing.mat")

    with pytest.raises(FileNotFoundError):
        memo_by_files(tmp_path, [tmp_path / "missing.mat"], "s", digest)


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "/opt/th"}, {"XDG_CACHE_HOME": "/var/xdg"},
                                 {"TORCH_HOME": "~/th", "XDG_CACHE_HOME": "/var/xdg"}])
def test_torch_hub_folder_follows_torch(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.hub

    for k in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    assert torch_hub_dir_from_env() == Path(torch.hub.get_dir())


def test_hf_cache_lookups_still_find_cached_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The short-cut (no repo folder → not cached) must not hide a repo that is in the cache."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "hf" / "models--org--net"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors").write_bytes(b"w")
    assert local_snapshot("org/net", None, None) == snap
    assert local_snapshot("org/other", None, None) is None
    src = WeightSource(hf_repo="org/net", hf_file="model.safetensors")
    assert resolve_weights("e", src, None, download=False) == snap / "model.safetensors"
