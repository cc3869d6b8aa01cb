"""Derived backbones on disk: ``$HARNESS_HOME/derived/<content hash>/`` with weights, classifier and manifest.

The folder is assembled under a hidden temporary name, the manifest written last,
then renamed into place in one ``os.replace``: a fine-tune killed at any point
leaves at most a hidden ``.tmp-*`` folder that no listing shows and the next
fine-tune removes. The folder name is the digest of the fine-tuned weights, so
identical results share one folder and the token cache (keyed on the same digest)
never mixes a derived net's tokens with its parent's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import DataError
from harness.pids import alive as _alive

if TYPE_CHECKING:  # annotations only: listing derived entries (every `harness` command) must not import torch
    import torch

log = logging.getLogger("harness")

FORMAT = 1
WEIGHTS = "weights.safetensors"
CLASSIFIER = "classifier.safetensors"
MANIFEST = "manifest.json"
#: the plugin id of the backbone that rebuilds a derived net (``harness_finetune``)
PLUGIN = "derived"
_TMP = re.compile(r"^\.tmp-[0-9a-f]+-(\d+)-\d+$")


def finetune_key(parent_weights: str, task_digest: str, recipe_digest: str) -> str:
    """What makes two fine-tunes the same computation: reused instead of retrained."""
    return hashlib.sha256(f"{parent_weights}\n{task_digest}\n{recipe_digest}".encode()).hexdigest()


@dataclass(frozen=True)
class DerivedManifest:
    path: Path  #: the derived folder
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def parent(self) -> dict[str, Any]:
        return dict(self.data["parent"])

    @property
    def task(self) -> dict[str, Any]:
        return dict(self.data["task"])

    @property
    def key(self) -> str:
        return str(self.data["key"])

    @property
    def results(self) -> dict[str, Any]:
        return dict(self.data["results"])

    @property
    def weights_path(self) -> Path:
        return self.path / self.data["weights"]["file"]

    def registry_entry(self) -> dict[str, Any]:
        """The registry fragment body of this derived backbone: parent-linked, not part of plain ``--all``."""
        r, recipe = self.results, self.data["recipe"]
        return {
            "plugin": PLUGIN,
            "args": {"id": self.id},
            "parent": self.parent["name"],
            "random_init": False,
            "in_all": False,
            "tags": ["derived", f"task:{self.task['id']}"],
            "meta": {
                "derived_id": self.id,
                "task": self.task["id"],
                "task_level": self.task.get("level", ""),
                "task_digest": self.task["digest"],
                "parent_weights": self.parent["weights_digest"],
                "recipe_digest": self.data["recipe_digest"],
                "steps": recipe["steps"],
                "lr": recipe["lr"],
                "probe_accuracy": r["probe_accuracy"],
                "val_accuracy": r["val_accuracy"],
                "family": self.parent.get("meta", {}).get("family"),
                "training_data": f"{self.parent.get('meta', {}).get('training_data', '?')} + {self.task['id']}",
            },
        }


def _read_manifest(folder: Path) -> DerivedManifest | None:
    p = folder / MANIFEST
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
        for key in ("id", "name", "parent", "task", "key", "weights", "results", "recipe", "recipe_digest"):
            if key not in data:
                raise KeyError(key)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable derived-backbone manifest (%s); ignored", p, exc)
        return None
    return DerivedManifest(path=folder, data=data)


class DerivedStore:
    def __init__(self, home: Path) -> None:
        self.root = Path(home) / "derived"

    def manifests(self) -> list[DerivedManifest]:
        """Complete derived backbones only (a folder without its manifest does not exist here)."""
        if not self.root.is_dir():
            return []
        found = [_read_manifest(p) for p in sorted(self.root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        return sorted((m for m in found if m is not None), key=lambda m: m.name)

    def get(self, derived_id: str) -> DerivedManifest:
        m = _read_manifest(self.root / derived_id)
        if m is None:
            raise DataError(f"{self.root / derived_id / MANIFEST}: derived backbone {derived_id!r} not found "
                            "(was HARNESS_HOME changed, or the folder removed?)")
        return m

    def find(self, key: str) -> DerivedManifest | None:
        return next((m for m in self.manifests() if m.key == key), None)

    def registry_fragment(self) -> dict[str, Any]:
        return {"backbones": {m.name: m.registry_entry() for m in self.manifests()}}

    def clean_stale(self) -> int:
        """Remove temporary folders left by fine-tunes whose process is gone."""
        if not self.root.is_dir():
            return 0
        n = 0
        for p in self.root.iterdir():
            m = _TMP.match(p.name)
            if m and not _alive(int(m.group(1))):
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n

    def save(self, digest: str, state_dict: dict[str, torch.Tensor], classifier: dict[str, torch.Tensor],
             manifest: dict[str, Any]) -> DerivedManifest:
        """Write weights, classifier, then the manifest, into a hidden folder renamed into place at the end."""
        from safetensors.torch import save_file

        from harness import __version__
        from harness.kit.fetch import sha256_file

        derived_id = digest[:16]
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / derived_id
        tmp = self.root / f".tmp-{derived_id}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        try:
            save_file(state_dict, str(tmp / WEIGHTS), metadata={"format": "pt", "harness_digest": digest})
            save_file(classifier, str(tmp / CLASSIFIER), metadata={"format": "pt"})
            data = {
                "format": FORMAT,
                "id": derived_id,
                **manifest,
                "weights": {"file": WEIGHTS, "sha256": sha256_file(tmp / WEIGHTS), "digest": digest},
                "classifier": {"file": CLASSIFIER, "sha256": sha256_file(tmp / CLASSIFIER)},
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "harness_version": __version__,
            }
            (tmp / MANIFEST).write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
            existing = _read_manifest(final)
            if existing is not None:  # identical weights already stored (same digest): keep the first
                shutil.rmtree(tmp)
                return existing
            if final.exists():  # a manifest-less folder is not a derived backbone; replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        m = _read_manifest(final)
        assert m is not None
        return m
