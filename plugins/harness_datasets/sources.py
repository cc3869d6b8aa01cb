"""Where the public datasets can be downloaded, as data: commit-pinned URLs with sha256 and size.

The Algonauts 2019 training sets, Kriegeskorte 2008 and Cowley 2023 files are served
from the public GitHub repositories named in ``../shared/data/*/PROVENANCE.md`` at pinned
commits; their checksums (``sources/<name>.json``) were computed from copies whose git
blob hashes equal the upstream blobs. NSD comes from its public S3 bucket after the user
accepts its terms; NSD publishes no checksums, so they are recorded on first download.
Regenerate a manifest from a verified local copy with
``python -m harness_datasets.sources <name> <folder>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.errors import DataError
from harness.kit.fetch import FetchPlan, RemoteFile, sha256_file

MANIFESTS = Path(__file__).resolve().parent / "sources"
GH = "https://raw.githubusercontent.com"
_ALGO92 = f"{GH}/kejriwalawadh/Predicting-Visual-Brain-Response-using-Convolutional-Neural-Networks/38dc3a8a60830b145125aa8fe8eef07e664c702f/Training_Data/92_Image_Set"
_NMZ = f"{GH}/NagyMiklosZoltan/Szakdolgozat2020_NMZ"
_RSA = f"{GH}/rsagroup/rsatoolbox/44ac7ca0416c7b723b101a7f3a0be4e0c3f74042/demos/92imageData"
_COWLEY = f"{GH}/cowleygroup/V4_compact_models/64abd2e5e6d9971bdc2a4f83905c88b7210f7017/data_V4_responses"

#: manifest name → [(local path relative to the dataset folder (glob), URL of that file with {name} for the basename)]
LAYOUTS: dict[str, list[tuple[str, str]]] = {
    "cichy92": [("target_fmri.mat", f"{_ALGO92}/target_fmri.mat"), ("images/*.jpg", f"{_ALGO92}/92images/{{name}}")],
    "cichy118": [
        ("target_fmri.mat", f"{_NMZ}/fd75ae573fe79b70e3c5c7214c57c3b5baf0b4b1/algonautsChallenge2019/Training_Data/118_Image_Set/target_fmri.mat"),
        ("images/*.jpg", f"{_NMZ}/5dcd6e52cb7855b77d2712043808894a120283e7/RawImages/118images/{{name}}"),
    ],
    "kriegeskorte92": [("92_brainRDMs.mat", f"{_RSA}/92_brainRDMs.mat"),
                       ("Kriegeskorte_Neuron2008_supplementalData.mat", f"{_RSA}/Kriegeskorte_Neuron2008_supplementalData.mat")],
    "cowley_v4": [("images_*.zip", f"{_COWLEY}/images/{{name}}"),
                  ("responses_raw_*.npy", f"{_COWLEY}/responses_raw/{{raw}}"),
                  ("responses_[0-9]*.npy", f"{_COWLEY}/responses_repeat_averaged/{{name}}")],
}
NOTES = {
    "cichy92": "Algonauts 2019 92-image training set (Cichy et al. 2014), fMRI RDMs + images; GitHub mirror pinned by commit",
    "cichy118": "Algonauts 2019 118-image training set (Cichy et al. 2016), fMRI RDMs + images; GitHub mirror pinned by commit",
    "kriegeskorte92": "Kriegeskorte et al. 2008 RDMs and stimuli from the rsatoolbox demos (MIT licence)",
    "cowley_v4": "Cowley et al. 2023 V4 responses (cowleygroup/V4_compact_models, GPL-3.0; cite the paper)",
}


def manifest(name: str) -> list[dict]:
    path = MANIFESTS / f"{name}.json"
    if not path.is_file():
        raise DataError(f"{path}: no download manifest for {name!r}")
    return json.loads(path.read_text())["files"]


def github_plan(name: str, folder: Path, select: str | None = None) -> FetchPlan:
    """Plan for a manifest; ``select`` keeps entries whose dest contains it (e.g. one Cowley session)."""
    files = [RemoteFile(url=f["url"], dest=f["dest"], sha256=f["sha256"], size=f["size"])
             for f in manifest(name) if select is None or select in f["dest"]]
    return FetchPlan(folder=folder, files=files, note=NOTES[name])


def write_manifest(name: str, local: Path) -> Path:
    """Record dest, URL, sha256 and size of every file of a verified local copy."""
    files = []
    for pattern, url in LAYOUTS[name]:
        matches = sorted(local.glob(pattern))
        if not matches:
            raise DataError(f"{local}: nothing matches {pattern!r}")
        for p in matches:
            raw = p.name.replace("responses_raw_", "responses_")
            files.append({"dest": str(p.relative_to(local)), "url": url.format(name=p.name, raw=raw),
                          "sha256": sha256_file(p), "size": p.stat().st_size})
    MANIFESTS.mkdir(exist_ok=True)
    out = MANIFESTS / f"{name}.json"
    out.write_text(json.dumps({"name": name, "note": NOTES[name], "files": files}, indent=1))
    return out


# ----------------------------------------------------------------------------- NSD
NSD_BUCKET = "https://natural-scenes-dataset.s3.amazonaws.com"
NSD_TERMS = ("The Natural Scenes Dataset may be used only under its Terms and Conditions "
             "(https://naturalscenesdataset.org, 'Data access'): you must have submitted the NSD Data Access Agreement. "
             "Do you confirm you have agreed to them?")
#: sessions each NSD subject completed
NSD_SESSIONS = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}


def nsd_plan(root: Path, subject: int, space: str, beta_version: str, sessions: tuple[int, ...], hemis: tuple[str, ...],
             mask: str, label_files: tuple[str, ...], surface: str) -> FetchPlan:
    sid = f"subj{subject:02d}"
    if subject not in NSD_SESSIONS:
        raise DataError(f"NSD has subjects 1–8, not {subject}")
    sess = sessions or tuple(range(1, NSD_SESSIONS[subject] + 1))
    keys = ["nsddata/experiments/nsd/nsd_expdesign.mat", "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"]
    bdir = f"nsddata_betas/ppdata/{sid}/{space}/{beta_version}"
    labels = [n for n in dict.fromkeys((mask, *label_files)) if n]
    if space == "fsaverage":
        for h in hemis:
            keys += [f"{bdir}/{h}.betas_session{s:02d}.mgh" for s in sess] + [f"{bdir}/{h}.ncsnr.mgh"]
            keys += [f"nsddata/freesurfer/fsaverage/label/{h}.{n}.mgz" for n in labels]
            keys.append(f"nsddata/freesurfer/fsaverage/surf/{h}.{surface}")
    else:
        keys += [f"{bdir}/betas_session{s:02d}.nii.gz" for s in sess] + [f"{bdir}/ncsnr.nii.gz"]
        keys += [f"nsddata/ppdata/{sid}/func1pt8mm/roi/{n}.nii.gz" for n in labels]
    files = [RemoteFile(url=f"{NSD_BUCKET}/{k}", dest=k) for k in keys]
    return FetchPlan(folder=root, files=files, terms=NSD_TERMS,
                     note=f"NSD {sid} {space}: {len(sess)} sessions from the public bucket (the stimulus file alone is ~37 GB); "
                          "sha256 recorded on first download")


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    print(write_manifest(sys.argv[1], Path(sys.argv[2])))
