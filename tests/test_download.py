"""The fetch scripts against a local HTTP server on 127.0.0.1 serving small archives with the real names and
layouts, including a truncated file, a changed file (wrong checksum) and a 404."""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import threading
import warnings
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsrlib.data.datasets import load_dataset
from fsrlib.data.download import (
    MANIFEST,
    ChecksumMismatchError,
    DownloadError,
    FolderNotWritableError,
    Manifest,
    RarToolMissingError,
    fetch_benchmark,
    rar_command,
)
from fsrlib.data.sources import SOURCES, RemoteFile
from tests.rar4 import write_rar_volumes


class Server:
    """Serves ``files`` by name; names in ``truncated`` announce their full length but send half of it."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncated: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(self.path)
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if name in server.truncated else data)
                if name in server.truncated:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, mirror: str = "a") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mirror}/"


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()


def local(files, *bases) -> tuple[RemoteFile, ...]:
    """The benchmark's real file list with only local mirrors (keeps the test off the internet)."""
    return tuple(replace(f, urls=tuple(b + f.filename for b in bases), alternatives=local(f.alternatives, *bases))
                 for f in files)


def jpeg_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def oxford_archives() -> dict[str, bytes]:
    """oxbuild_images-v1.tgz holds flat JPEGs; gt_files_170407.tgz flat ground-truth files (real names)."""
    images = {f"all_souls_00000{i}.jpg": jpeg_bytes(40 * i) for i in range(1, 4)}
    gt = {"all_souls_1_query.txt": b"oxc1_all_souls_000001 1.0 2.0 20.0 15.0\n",
          "all_souls_1_good.txt": b"all_souls_000002\n", "all_souls_1_ok.txt": b"",
          "all_souls_1_junk.txt": b"all_souls_000003\n"}
    return {"oxbuild_images-v1.tgz": tgz(images), "gt_files_170407.tgz": tgz(gt)}


def fetch_oxford(server, tmp_path, *bases):
    return fetch_benchmark("oxford5k", tmp_path, progress=False, retries=0,
                           files=local(SOURCES["oxford5k"][1], *(bases or (server.url(),))))


def test_fetch_unpack_and_load(server, tmp_path):
    server.files.update(oxford_archives())
    folder = fetch_oxford(server, tmp_path)
    assert folder == tmp_path / "oxford5k"
    assert min(p.name for p in (folder / "oxbuild_images").iterdir()) == "all_souls_000001.jpg"
    manifest = Manifest(folder / MANIFEST)
    assert set(manifest.entries) == {"oxbuild_images-v1.tgz", "gt_files_170407.tgz"}
    assert all(len(e["sha256"]) == 64 and e["unpacked"] for e in manifest.entries.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3 of 5062 images: the partial-data warning
        ds = load_dataset("oxford5k", folder)
    assert ds.gnd[0]["ok"] == [1] and ds.gnd[0]["junk"] == [2] and ds.gnd[0]["bbx"] == (1.0, 2.0, 20.0, 15.0)
    # a second run fetches and unpacks nothing
    n = len(server.requests)
    (folder / "oxbuild_images" / "all_souls_000001.jpg").unlink()  # unpacked once: a user's deletion is kept
    fetch_oxford(server, tmp_path)
    assert len(server.requests) == n
    assert not (folder / "oxbuild_images" / "all_souls_000001.jpg").exists()


def test_truncated_download_is_not_kept_and_next_mirror_is_used(server, tmp_path):
    server.files.update(oxford_archives())
    server.truncated.add("gt_files_170407.tgz")
    with pytest.raises(DownloadError) as err:
        fetch_oxford(server, tmp_path)
    message = str(err.value)
    print("\n--- truncated file ---\n" + message)
    assert "gt_files_170407.tgz" in message and "Nothing partial was kept" in message
    assert "IncompleteRead" in message or "ChunkedEncodingError" in message
    folder = tmp_path / "oxford5k"
    assert not (folder / "gt_files_170407.tgz").exists()
    assert [p.name for p in folder.iterdir() if "gt_files" in p.name] == []  # no temporary left either
    assert (folder / "oxbuild_images-v1.tgz").is_file()  # the finished file stays
    # a second mirror (same server, other path) serves it whole: the first mirror's failure is skipped
    server.truncated.clear()
    requested = len(server.requests)
    fetch_oxford(server, tmp_path, server.url("a"), server.url("b"))
    assert (folder / "gt_files_170407" / "all_souls_1_query.txt").is_file()
    assert not any("oxbuild_images" in r for r in server.requests[requested:])  # not fetched again


def test_changed_file_on_server_is_a_checksum_error(server, tmp_path):
    server.files.update(oxford_archives())
    folder = fetch_oxford(server, tmp_path)
    (folder / "gt_files_170407.tgz").unlink()
    server.files["gt_files_170407.tgz"] = tgz({"all_souls_1_query.txt": b"something else\n"})
    with pytest.raises(DownloadError) as err:
        fetch_oxford(server, tmp_path)
    print("\n--- wrong checksum from the server ---\n" + str(err.value))
    assert "sha256 differs from the one recorded in fsrlib-manifest.json" in str(err.value)
    assert "delete the file's entry from" in str(err.value)
    assert not (folder / "gt_files_170407.tgz").exists()


def test_damaged_local_file_is_a_checksum_error(server, tmp_path):
    server.files.update(oxford_archives())
    folder = fetch_oxford(server, tmp_path)
    with open(folder / "oxbuild_images-v1.tgz", "r+b") as fh:
        fh.write(b"\0\0\0\0")
    with pytest.raises(ChecksumMismatchError, match="Delete it to fetch it again") as err:
        fetch_oxford(server, tmp_path)
    print("\n--- damaged file on disk ---\n" + str(err.value))


def test_404_falls_back_to_the_legacy_release_then_fails_clearly(server, tmp_path):
    archives = oxford_archives()
    server.files["oxbuild_images.tgz"] = archives.pop("oxbuild_images-v1.tgz")  # only the legacy name exists
    server.files.update(archives)
    folder = fetch_oxford(server, tmp_path)
    assert (folder / "oxbuild_images.tgz").is_file() and not (folder / "oxbuild_images-v1.tgz").exists()
    assert (folder / "oxbuild_images" / "all_souls_000002.jpg").is_file()
    with pytest.raises(DownloadError) as err:
        fetch_benchmark("paris6k", tmp_path, progress=False, retries=0, files=local(SOURCES["paris6k"][1],
                                                                                      server.url()))
    print("\n--- 404 ---\n" + str(err.value))
    assert "paris_1-v1.tgz or paris_1.tgz" in str(err.value) and "404" in str(err.value)


def test_unreadable_archive_says_so(server, tmp_path):
    server.files.update(oxford_archives())
    server.files["gt_files_170407.tgz"] = b"<html>302 Found</html>"
    with pytest.raises(DownloadError, match="not a readable tar archive"):
        fetch_oxford(server, tmp_path)


def test_flickr_rar_volumes(server, tmp_path):
    if shutil.which("unar") is None and shutil.which("unrar") is None:
        pytest.skip("no RAR extractor (install Debian's unar; `make test` does so when run as root)")
    vols = write_rar_volumes(tmp_path, "oxc1_100k", [{f"d{i}.jpg": jpeg_bytes(i * 30)} for i in range(3)])
    server.files.update({p.name: p.read_bytes() for p in vols})
    files = local(SOURCES["flickr100k"][1][:3], server.url())
    folder = fetch_benchmark("flickr100k", tmp_path / "data", progress=False, retries=0, files=files)
    assert sorted(p.name for p in folder.rglob("*.jpg")) == ["d0.jpg", "d1.jpg", "d2.jpg"]
    assert Image.open(next(folder.rglob("d1.jpg"))).size == (32, 24)


def test_missing_rar_tool_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RarToolMissingError, match="apt install unar") as err:
        rar_command(tmp_path / "oxc1_100k.part01.rar", tmp_path)
    print("\n--- no RAR tool ---\n" + str(err.value))


def test_cli_with_a_mirror(server, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch", Path(__file__).parents[1] / "data_scripts" / "fetch.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    server.files.update(oxford_archives())
    assert fetch.main(["oxford5k", "--data-dir", str(tmp_path), "--mirror", server.url(), "--quiet"]) == 0
    assert "oxford5k: ready in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        fetch.main(["imagenet"])


def load_fetch_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch", Path(__file__).parents[1] / "data_scripts" / "fetch.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    return fetch


def test_folder_that_cannot_be_created_is_named_before_any_transfer(server, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should go")  # mkdir fails here even for root
    server.files.update(oxford_archives())
    with pytest.raises(FolderNotWritableError, match=rf"cannot write the benchmark's files into {blocker}/data/"
                                                     rf"oxford5k .*--data-dir.*move the file {blocker}"):
        fetch_oxford(server, blocker / "data")
    assert server.requests == []  # refused before any transfer, not reported as failed mirrors
    fetch = load_fetch_script()
    assert fetch.main(["oxford5k", "--data-dir", str(blocker / "data"), "--quiet"]) == 1  # no traceback
    assert f"oxford5k: cannot write the benchmark's files into {blocker}" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="running as root: chmod does not stop root from writing, so a read-only folder cannot "
                           "be made here (the test above covers the same error through a folder under a file)")
def test_read_only_folder_is_named_and_a_complete_one_still_verifies(server, tmp_path):
    server.files.update(oxford_archives())
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        with pytest.raises(FolderNotWritableError, match=rf"{read_only}/oxford5k.*chmod u\+w {read_only}"):
            fetch_oxford(server, read_only)
    finally:
        read_only.chmod(0o755)
    folder = fetch_oxford(server, tmp_path / "done")
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    try:
        assert fetch_oxford(server, tmp_path / "done") == folder  # nothing to write: a read-only copy is fine
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


def test_unwritable_existing_folder_says_chmod(server, tmp_path, monkeypatch):
    from fsrlib.data import download

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")  # what a read-only folder gives a non-root user

    monkeypatch.setattr(download.tempfile, "TemporaryFile", refuse)
    (tmp_path / "oxford5k").mkdir()
    with pytest.raises(FolderNotWritableError, match=rf"into {tmp_path}/oxford5k: Permission denied.*"
                                                     rf"chmod u\+w {tmp_path}/oxford5k"):
        fetch_oxford(server, tmp_path)


def test_complete_download_needs_no_write(server, tmp_path, monkeypatch):
    from fsrlib.data import download

    server.files.update(oxford_archives())
    folder = fetch_oxford(server, tmp_path)

    def no_write(*args, **kwargs):
        raise AssertionError("a complete, verified download wrote to its folder")

    monkeypatch.setattr(download, "require_writable", no_write)
    monkeypatch.setattr(download.Manifest, "record", no_write)
    assert fetch_oxford(server, tmp_path) == folder  # so a read-only copy of a finished download still verifies
