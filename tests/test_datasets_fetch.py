"""`harness data fetch/status/ceiling`: downloads from a local HTTP server on 127.0.0.1 only (started here)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import DataError
from harness.kit.fetch import RECORD, FetchPlan, RemoteFile, download, fetch


class Server:
    """Serves files from ``root`` by URL path; Range-aware unless told otherwise; can cut a response short."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.honour_range = True
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                path = outer.root / unquote(urlparse(self.path).path).lstrip("/")
                outer.ranges.append(self.headers.get("Range"))
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                rng = self.headers.get("Range")
                start = int(rng.split("=")[1].split("-")[0]) if rng and outer.honour_range else 0
                if start >= len(data) and start:
                    self.send_response(416)
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[: outer.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "www")
    (tmp_path / "www").mkdir()
    yield s
    s.close()


def _blob(server: Server, name: str, n: int, seed: int = 0) -> tuple[bytes, str]:
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    p = server.root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


def test_interrupted_download_resumes_with_range(server: Server, tmp_path: Path) -> None:
    data, sha = _blob(server, "a/big.bin", 3_000_000)
    rf = RemoteFile(url=f"{server.url}/a/big.bin", dest="sub/big.bin", sha256=sha, size=len(data))
    server.cut_after = 1_000_000
    with pytest.raises(DataError, match=r"interrupted.*rerun to resume"):
        download(rf, tmp_path / "d")
    part = tmp_path / "d" / "sub" / "big.bin.part"
    assert part.stat().st_size == 1_000_000 and not (tmp_path / "d" / "sub" / "big.bin").exists()
    server.cut_after = None
    assert download(rf, tmp_path / "d") == "resumed"
    assert server.ranges[-1] == "bytes=1000000-"
    assert (tmp_path / "d" / "sub" / "big.bin").read_bytes() == data and not part.exists()
    assert download(rf, tmp_path / "d") == "present"  # verified, not refetched
    assert len(server.ranges) == 2


def test_server_ignoring_range_restarts_and_bad_checksum_is_refused(server: Server, tmp_path: Path) -> None:
    data, sha = _blob(server, "f.bin", 200_000)
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "f.bin.part").write_bytes(data[:50_000])
    server.honour_range = False
    assert download(RemoteFile(url=f"{server.url}/f.bin", dest="f.bin", sha256=sha), dest) == "downloaded"
    assert (dest / "f.bin").read_bytes() == data
    with pytest.raises(DataError, match=r"sha256 .* does not match the expected 0000"):
        download(RemoteFile(url=f"{server.url}/f.bin", dest="g.bin", sha256="0" * 64), dest)
    assert not (dest / "g.bin").exists() and not (dest / "g.bin.part").exists()
    with pytest.raises(DataError, match="HTTP 404"):
        download(RemoteFile(url=f"{server.url}/nope.bin", dest="n.bin"), dest)


def test_unpublished_checksums_are_recorded_then_enforced(server: Server, tmp_path: Path) -> None:
    _, sha = _blob(server, "x/y.bin", 10_000)
    plan = FetchPlan(folder=tmp_path / "d", files=[RemoteFile(url=f"{server.url}/x/y.bin", dest="y.bin")])
    assert fetch(plan) == {"present": 0, "downloaded": 1, "resumed": 0}
    assert json.loads((tmp_path / "d" / RECORD).read_text()) == {"y.bin": sha}
    assert fetch(plan)["present"] == 1
    (tmp_path / "d" / "y.bin").write_bytes(b"tampered")
    with pytest.raises(DataError, match="exists but its sha256 differs"):
        fetch(plan)


def _mirror_manifest(server: Server, name: str, local: Path) -> None:
    """Lay the shared copies out under the URL paths of the manifest (symlinks, read-only)."""
    from harness_datasets.sources import manifest

    for f in manifest(name):
        target = server.root / urlparse(f["url"]).path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(local / f["dest"])


def test_fetch_cichy92_from_a_local_mirror_then_load(shared_data: Path, harness_env: Path, server: Server,
                                                      tmp_path: Path) -> None:
    _mirror_manifest(server, "cichy92", shared_data / "cichy92")
    data = tmp_path / "data"
    runner = CliRunner()
    res = runner.invoke(app, ["--data-root", str(data), "data", "fetch", "cichy92", "--mirror", server.url])
    assert res.exit_code == 0, res.output
    assert "93 downloaded" in res.output
    assert all(r is None for r in server.ranges)
    res = runner.invoke(app, ["--data-root", str(data), "data", "ceiling", "cichy92"])
    assert res.exit_code == 0, res.output
    assert "0.1589" in res.output and "0.3075" in res.output  # the devkit's upper ceilings, from the fetched copy
    res = runner.invoke(app, ["--data-root", str(data), "data", "status"])
    assert res.exit_code == 0 and "cichy92" in res.output


def test_nsd_terms_must_be_accepted(harness_env: Path, server: Server, tmp_path: Path) -> None:
    from tests.test_datasets_nsd import nsd_fixture

    nsd_fixture(server.root)  # the bucket's key layout, served locally
    reg = tmp_path / "reg.yaml"
    reg.write_text(yaml.safe_dump({"datasets": {"nsd1": {"plugin": "nsd", "args": {
        "subject": 1, "sessions": [1, 2], "hemis": ["lh"]}}}}))
    data = tmp_path / "data"
    runner = CliRunner()
    args = ["--data-root", str(data), "--registry", str(reg), "data", "fetch", "nsd1", "--mirror", server.url]
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "Terms and Conditions" in str(res.exception) and not data.exists()
    res = runner.invoke(app, [*args, "--accept-terms"])
    assert res.exit_code == 0, res.output
    assert (data / "nsd" / "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR/lh.betas_session02.mgh").is_file()
    assert not (data / "nsd" / "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR/lh.betas_session03.mgh").exists()
    res = runner.invoke(app, ["--data-root", str(data), "--registry", str(reg), "data", "ceiling", "nsd1"])
    assert res.exit_code == 0, res.output
    assert "early" in res.output


def test_unfetchable_entries_say_why(harness_env: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg.yaml"
    reg.write_text(yaml.safe_dump({"datasets": {"a23": {"plugin": "algonauts2023", "args": {"root": str(tmp_path)}},
                                                "syn": {"plugin": "synthetic_voxels"}}}))
    runner = CliRunner()
    res = runner.invoke(app, ["--registry", str(reg), "data", "fetch", "a23"])
    assert res.exit_code != 0 and "registration" in str(res.exception)
    res = runner.invoke(app, ["--registry", str(reg), "data", "fetch", "syn"])
    assert res.exit_code != 0 and "no public download" in str(res.exception)
