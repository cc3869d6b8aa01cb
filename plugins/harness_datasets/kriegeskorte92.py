"""Kriegeskorte et al. 2008: human IT fMRI RDMs and the monkey IT RDM for the 92 images.

Layout of ``$HARNESS_DATA_ROOT/kriegeskorte92`` (the rsatoolbox demo files, MATLAB v5)::

    92_brainRDMs.mat                             RDMs (1×4×2 struct: RDM 92×92, name 'hIT | BE | Session: 1')
    Kriegeskorte_Neuron2008_supplementalData.mat stimuli_92objs (1×92 struct: category, image 175×175×3 uint8),
                                                 categoryVectors (92×12), categoryLabels (12),
                                                 RDMs_mIT_hIT_fig1 (mIT_674neurons, hITvisStim_316vx; condensed)

The image order is that of the Algonauts 2019 92-image set. Human RDMs: 4 subjects ×
2 sessions; ``sessions="mean"`` averages each subject's two (4 RDMs), ``"separate"``
keeps 8 subject-sessions. The monkey has one RDM (``species="monkey"``): with a single
subject there is no leave-one-subject-out and no noise ceiling, so RSA heads that need
≥ 2 subjects cannot use it. :func:`category_labels` gives the 12 category vectors and the
derived animate/inanimate and face/body/natural/artificial labels per image.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.contracts import RDMTargets, Stimuli
from harness.errors import DataError
from harness.kit.filememo import memo_by_files
from harness_datasets.rdm_sets import AllSubjectsRDMDataset
from harness_datasets.roots import data_folder
from harness_datasets.specs import KRIEGESKORTE92, K08Args
from harness_datasets.stimuli import files_digest, stimuli_from_arrays

if TYPE_CHECKING:  # pandas loads with the data, not when a dataset is listed or checked
    import pandas as pd

    from harness.kit.fetch import FetchPlan

BRAIN_FILE = "92_brainRDMs.mat"
SUPP_FILE = "Kriegeskorte_Neuron2008_supplementalData.mat"
LAYOUT = (f"<root>/{BRAIN_FILE} (RDMs 1×4×2 struct with RDM, name) and <root>/{SUPP_FILE} "
          "(stimuli_92objs, categoryVectors, categoryLabels, RDMs_mIT_hIT_fig1)")
N_IMAGES = 92


def _need(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing (expected {LAYOUT})")
    return path


def _loadmat(path: Path, names: list[str]) -> dict:
    from scipy.io import loadmat

    try:
        m = loadmat(str(_need(path)), variable_names=names)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({exc}); expected {LAYOUT}") from exc
    missing = [n for n in names if n not in m]
    if missing:
        raise DataError(f"{path}: no variable(s) {missing}; expected {LAYOUT}")
    return m


def read_human_rdms(root: Path) -> tuple[np.ndarray, list[str], list[int]]:
    """(8 × 92 × 92 RDMs, subject initials, session numbers) in file order."""
    path = root / BRAIN_FILE
    s = _loadmat(path, ["RDMs"])["RDMs"]
    if s.dtype.names is None or not {"RDM", "name"} <= set(s.dtype.names):
        raise DataError(f"{path}: RDMs is not a struct with fields RDM and name; expected {LAYOUT}")
    rdms, subs, sess = [], [], []
    for el in s.ravel(order="F"):  # MATLAB order: subjects vary fastest within a session
        name = str(np.asarray(el["name"]).squeeze())
        parts = [p.strip() for p in name.split("|")]
        if len(parts) != 3 or not parts[2].lower().startswith("session"):
            raise DataError(f"{path}: RDM name {name!r} is not 'hIT | <subject> | Session: <k>'")
        r = np.asarray(el["RDM"], dtype=np.float64)
        if r.shape != (N_IMAGES, N_IMAGES):
            raise DataError(f"{path}: RDM {name!r} has shape {r.shape}, expected (92, 92)")
        rdms.append(r)
        subs.append(parts[1])
        sess.append(int(parts[2].split(":")[-1]))
    return np.stack(rdms), subs, sess


def read_fig1_rdms(root: Path) -> dict[str, np.ndarray]:
    """name → 92 × 92 of ``RDMs_mIT_hIT_fig1``: 'mIT_674neurons' (monkey IT), 'hITvisStim_316vx' (human IT group)."""
    from scipy.spatial.distance import squareform

    path = root / SUPP_FILE
    s = _loadmat(path, ["RDMs_mIT_hIT_fig1"])["RDMs_mIT_hIT_fig1"]
    out = {}
    for el in s.ravel():
        name = str(np.asarray(el["name"]).squeeze())
        vec = np.asarray(el["RDM"], dtype=np.float64).ravel()
        if vec.size != N_IMAGES * (N_IMAGES - 1) // 2:
            raise DataError(f"{path}: RDM {name!r} has {vec.size} entries, expected a condensed 92×92 (4186)")
        out[name] = squareform(vec, checks=False)
    return out


def category_labels(root: Path) -> pd.DataFrame:
    """One row per image (RDM order): ``image``, ``category`` (e.g. 'human face'), the 12 category
    vectors as 0/1 columns (animate, inanim, human, nonhumani, body, face, natObj, artiObj, rand24,
    rand48, other48, monkeyape), ``animacy`` (animate/inanimate) and ``kind4`` (face/body/natural/artificial)."""
    import pandas as pd

    path = root / SUPP_FILE
    m = _loadmat(path, ["categoryVectors", "categoryLabels", "stimuli_92objs"])
    vec = np.asarray(m["categoryVectors"])
    labels = [str(np.asarray(x).squeeze()) for x in np.asarray(m["categoryLabels"]).ravel()]
    if vec.shape != (N_IMAGES, len(labels)):
        raise DataError(f"{path}: categoryVectors has shape {vec.shape}, expected (92, {len(labels)})")
    st = m["stimuli_92objs"].ravel()
    df = pd.DataFrame(vec.astype(np.int8), columns=labels)
    df.insert(0, "category", [str(np.asarray(el["category"]).squeeze()) for el in st])
    df.insert(0, "image", [f"image_{i + 1:02d}" for i in range(N_IMAGES)])
    df["animacy"] = np.where(df["animate"] == 1, "animate", "inanimate")
    kind = np.select([df["face"] == 1, df["body"] == 1, df["natObj"] == 1, df["artiObj"] == 1],
                     ["face", "body", "natural", "artificial"], default="")
    if (kind == "").any():
        raise DataError(f"{path}: {int((kind == '').sum())} images are none of face/body/natObj/artiObj")
    df["kind4"] = kind
    return df


def read_images(root: Path) -> tuple[list[str], list[np.ndarray]]:
    path = root / SUPP_FILE
    st = _loadmat(path, ["stimuli_92objs"])["stimuli_92objs"].ravel()
    if st.dtype.names is None or "image" not in st.dtype.names:
        raise DataError(f"{path}: stimuli_92objs has no image field; expected {LAYOUT}")
    return [f"image_{i + 1:02d}" for i in range(len(st))], [np.asarray(el["image"]) for el in st]


class Kriegeskorte92(AllSubjectsRDMDataset):
    spec = KRIEGESKORTE92
    args: K08Args

    @property
    def root(self) -> Path:
        return data_folder(self.ctx, self.args.root, "kriegeskorte92", LAYOUT)

    def unavailable_reason(self) -> str | None:
        try:
            root = self.root
        except DataError as exc:
            return str(exc)
        for f in (BRAIN_FILE, SUPP_FILE):
            if not (root / f).is_file():
                return f"{root / f}: missing (expected {LAYOUT})"
        return None

    @cached_property
    def _stimuli(self) -> Stimuli:
        ids, imgs = read_images(self.root)
        return stimuli_from_arrays(imgs, ids, str(self.root / SUPP_FILE))

    def stimuli(self) -> Stimuli:
        return self._stimuli


    def labels(self) -> pd.DataFrame:
        """Per-image category labels (see :func:`category_labels`)."""
        return category_labels(self.root)

    @cached_property
    def _targets(self) -> RDMTargets:
        if self.args.species == "monkey":
            rdm = read_fig1_rdms(self.root).get("mIT_674neurons")
            if rdm is None:
                raise DataError(f"{self.root / SUPP_FILE}: no 'mIT_674neurons' RDM in RDMs_mIT_hIT_fig1")
            return RDMTargets(rdms={"mIT": rdm[None]}, subject_ids=["monkey"], roi_levels={"mIT": 1.0})
        rdms, subs, sess = read_human_rdms(self.root)
        if self.args.sessions == "separate":
            ids = [f"{s}_s{k}" for s, k in zip(subs, sess, strict=True)]
            return RDMTargets(rdms={"hIT": rdms}, subject_ids=ids, roi_levels={"hIT": 1.0})
        names = list(dict.fromkeys(subs))
        mean = np.stack([rdms[[i for i, s in enumerate(subs) if s == n]].mean(0) for n in names])
        return RDMTargets(rdms={"hIT": mean}, subject_ids=names, roi_levels={"hIT": 1.0})



    def fetch_plan(self) -> FetchPlan:
        from harness_datasets.sources import github_plan

        return github_plan("kriegeskorte92", self.root)

    def digest(self) -> str:
        """A function of the two files' bytes and the arguments, remembered while the files are untouched
        (:mod:`harness.kit.filememo`): planning then skips decoding the stimuli MATLAB file."""
        files = [self.root / BRAIN_FILE, self.root / SUPP_FILE]
        salt = f"{self.spec.id}:{self.spec.version}:digest:{self.args.species}:{self.args.sessions}"
        return memo_by_files(self.ctx.settings.cache_dir, files, salt, lambda: self._digest(files))

    def _digest(self, files: list[Path]) -> str:
        h = hashlib.sha256(self.stimuli().digest.encode())
        h.update(files_digest(files).encode())
        h.update(f"{self.args.species}:{self.args.sessions}".encode())
        return h.hexdigest()
