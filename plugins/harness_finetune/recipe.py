"""The fine-tuning recipe as data: defaults follow FactorTopy §4.4 (AdamW 3e-5, wd 0.01, batch 4, 3 000 steps,
50 training images per class); every field is overridable and the whole recipe keys the derived backbone."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.specs import Preprocess

#: bump when the training loop changes numerically: old derived backbones are not reused for new runs
TRAINER_VERSION = "1"


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(3e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(4, gt=0)
    steps: int = Field(3000, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    #: training images per class (after the validation hold-out)
    n_per_class: int = Field(50, gt=0)
    #: per class, this fraction (at most ``max_val_per_class``) is held out for validation accuracy
    val_fraction: float = Field(0.3, gt=0, lt=1)
    max_val_per_class: int = Field(50, gt=0)
    seed: int = 0
    #: tapped layer whose global token feeds the classifier; default the deepest
    layer: str | None = None
    #: ``frozen``: the backbone stays in eval mode (running BN statistics and dropout off) while its weights,
    #: BN affine parameters included, are trained; needed for nets whose BN is folded (identity placeholders)
    batchnorm: Literal["frozen", "train"] = "frozen"
    #: ``probe``: the classifier starts as the frozen linear probe (LP-FT), so step 0 scores the probe accuracy;
    #: ``zeros``: a zero classifier
    head_init: Literal["probe", "zeros"] = "probe"
    #: inverse L2 strength of the linear probe (scikit-learn's ``C`` on standardised features)
    probe_c: float = Field(1.0, gt=0)
    #: train and validate at this crop size instead of the backbone's (a cheap-CPU option; None = the backbone's)
    image_size: int | None = Field(None, gt=0)
    eval_batch_size: int = Field(32, gt=0)
    #: record validation accuracy every this many steps (0: only at the start and the end)
    eval_every: int = Field(0, ge=0)

    def digest(self) -> str:
        blob = json.dumps({"trainer": TRAINER_VERSION, **self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def preprocess_for(self, base: Preprocess) -> Preprocess:
        """The backbone's preprocessing, rescaled to ``image_size`` when set (same resize/crop ratio)."""
        if self.image_size is None:
            return base
        resize = max(self.image_size, round(base.resize * self.image_size / base.crop))
        return base.model_copy(update={"resize": resize, "crop": self.image_size})
