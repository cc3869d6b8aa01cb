"""Pydantic schemas for what plugins declare and what registry.yaml holds.

A plugin's :class:`PluginSpec` is its contract with the runner: the runner decides
which backbone × head × dataset × metric combinations make sense by comparing the
``consumes``/``produces`` vocabularies below, never by plugin names.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import PluginMissingError, RegistryError

PluginKind = Literal["backbone", "head", "metric", "dataset"]
KINDS: tuple[PluginKind, ...] = ("backbone", "head", "metric", "dataset")
#: registry.yaml section for each kind.
SECTIONS: dict[str, PluginKind] = {"backbones": "backbone", "heads": "head", "metrics": "metric", "datasets": "dataset"}

# --- the consumes/produces vocabulary -------------------------------------------------------
IMAGES = "images"  #: a backbone consumes stimuli images
TOKENS = "tokens"  #: cached Tokens (backbone produces; most heads consume)
LIVE_BACKBONE = "backbone"  #: a head that needs the live network (e.g. trains through it)
VOXELS = "voxels"  #: voxel / neuron responses (stimuli × voxels)
RDMS = "rdms"  #: representational dissimilarity matrices per ROI per subject
VOXEL_PREDICTIONS = "voxel_predictions"  #: head output: predicted responses on test stimuli
MODEL_RDMS = "model_rdms"  #: head output: model RDM per ROI (per held-out subject)
LAYER_WEIGHTS = "layer_weights"  #: head output: per-unit weights over the backbone's ordered layers
SCORES = "scores"  #: metric output
TARGET_KINDS = (VOXELS, RDMS)

_ID = re.compile(r"^[a-z][a-z0-9_.\-]*$")
_TASK_ID = re.compile(r"^[a-z][a-z0-9_\-]*$")


class PluginArgs(BaseModel):
    """Base for every plugin's argument schema: unknown (misspelled) arguments are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Spec(BaseModel):
    """What every pluggable class declares: id, version, argument schema and the modules it needs."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    version: str
    summary: str
    args: type[PluginArgs] = PluginArgs
    #: importable modules this plugin needs at build time (checked before building)
    requires: tuple[str, ...] = ()
    #: the pip extra of ``harness`` that installs ``requires``
    extra: str | None = None

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"plugin id {v!r} must match {_ID.pattern}")
        return v

    def missing_requirements(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def check_requirements(self, what: str) -> None:
        """Fail early with the pip command that fixes it, rather than deep inside a build."""
        missing = self.missing_requirements()
        if missing:
            hint = f"pip install 'harness[{self.extra}]'" if self.extra else f"pip install {' '.join(missing)}"
            raise PluginMissingError(f"{what} needs {', '.join(missing)}: {hint}")

    def parse_args(self, raw: dict[str, Any], where: str) -> PluginArgs:
        """Validate raw arguments against ``args``; the one-line error names ``where`` and the field."""
        try:
            return self.args(**raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "args"
            msg = "unknown argument (misspelled?)" if err["type"] == "extra_forbidden" else err["msg"]
            raise RegistryError(f"{where}: args.{field}: {msg}") from None


class PluginSpec(Spec):
    """What a plugin is and what it exchanges with the rest of the pipeline."""

    kind: PluginKind
    consumes: frozenset[str] = frozenset()
    produces: frozenset[str] = frozenset()


class TaskSpec(Spec):
    """A labelled-image task for fine-tuning; ``id`` is what ``--task`` names and derived backbones record."""

    #: "semantic", "low-level" …: shown by ``harness finetune --list``
    level: str = ""

    @field_validator("id")
    @classmethod
    def _task_id_ok(cls, v: str) -> str:
        if not _TASK_ID.match(v):
            raise ValueError(f"task id {v!r} must match {_TASK_ID.pattern}")
        return v


class Preprocess(BaseModel):
    """Image preprocessing as data (timm-style): resize shorter side, centre crop, normalise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resize: int = Field(gt=0, description="shorter side after resizing, pixels")
    crop: int = Field(gt=0, description="centre crop size, pixels")
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def decode_recipe(self) -> dict[str, Any]:
        """The fields that decide the uint8 pixels (resize, crop, interpolation): what keys the decoded-stimulus
        cache. Mean and std are a cheap float op on those pixels, so recipes differing only there share an entry."""
        return {"resize": self.resize, "crop": self.crop, "interpolation": self.interpolation}

    @classmethod
    def from_crop_pct(cls, size: int, crop_pct: float = 0.875, **kw: Any) -> Preprocess:
        return cls(resize=round(size / crop_pct), crop=size, **kw)


class RegistryEntry(BaseModel):
    """A named instance of a plugin with its arguments: one row of the zoo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: PluginKind
    plugin: str
    args: dict[str, Any] = Field(default_factory=dict)
    #: build with random weights (a control); every score row from it is labelled so
    random_init: bool = False
    #: the entry this one was derived from (a fine-tuned backbone's base)
    parent: str | None = None
    tags: tuple[str, ...] = ()
    #: part of ``harness run --all``; ``false`` keeps costly variants (ablations, big models) to explicit runs
    in_all: bool = True
    #: free metadata shown in leaderboards: hub_id, revision, sha256, licence, citation,
    #: family, params_m (model size), training_data, n_train_images …
    meta: dict[str, Any] = Field(default_factory=dict)
    #: where the entry came from (a file path or a plugin name) for error messages
    source: str = "registry.yaml"

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"entry name {v!r} must match {_ID.pattern}")
        return v


class LazyPlugin:
    """A plugin declared by its spec and the place of its class (``"package.module:Class"``), imported on first build.

    Why: ``harness list``, ``--help`` and registry checks need only specs; importing each class's module
    would import torch, timm, transformers … in every command. A plugin's ``harness_plugins`` hook may return
    these instead of classes (both are accepted); the spec (argument schema included) lives in a module that
    imports only pydantic and :mod:`harness.specs`, and the class module sets ``spec`` to the same object.
    """

    __slots__ = ("_cls", "spec", "target")

    def __init__(self, spec: PluginSpec, target: str) -> None:
        if not isinstance(spec, PluginSpec):
            raise RegistryError(f"lazy plugin {target!r}: spec must be a PluginSpec, not {type(spec).__name__}")
        if target.count(":") != 1:
            raise RegistryError(f"lazy plugin {spec.kind} {spec.id!r}: target {target!r} must be 'package.module:Class'")
        self.spec = spec
        self.target = target
        self._cls: type | None = None

    def __repr__(self) -> str:
        return f"LazyPlugin({self.spec.kind} {self.spec.id!r} → {self.target})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for executors in other processes (the cached class is not sent)
        return (LazyPlugin, (self.spec, self.target))

    def load(self) -> type:
        """Import the class; a class whose own spec is not the declared one is an error (the two cannot drift)."""
        if self._cls is None:
            module_name, _, attr = self.target.partition(":")
            what = f"{self.spec.kind} plugin {self.spec.id!r} ({self.target})"
            cls = getattr(importlib.import_module(module_name), attr, None)
            if not isinstance(cls, type):
                raise RegistryError(f"{what}: module {module_name!r} has no class {attr!r}")
            if getattr(cls, "spec", None) != self.spec:
                raise RegistryError(f"{what}: the class's spec differs from the declared one; set `spec = ` the declared spec")
            self._cls = cls
        return self._cls
