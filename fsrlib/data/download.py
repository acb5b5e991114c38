"""Fetch, verify and unpack the benchmarks (pooch does the transfers).

Idempotent and resumable by file: a file on disk whose sha256 matches the
manifest is never fetched again, so an interrupted run continues where it
stopped. Transfers go to a temporary name and are renamed only when complete
(pooch), so a partial file never counts as done. The manifest
(``fsrlib-manifest.json`` in the benchmark's folder) records the sha256, size
and URL of every file on its first fetch; a later mismatch, on disk or from a
server, is an error that says what to do. Archives are unpacked into a
temporary folder and moved into place, then marked unpacked in the manifest.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pooch

from fsrlib.data.sources import SOURCES, RemoteFile, with_mirror

log = logging.getLogger(__name__)
MANIFEST = "fsrlib-manifest.json"


class DownloadError(RuntimeError):
    """No mirror of a file could be fetched."""


class ChecksumMismatchError(RuntimeError):
    """A file's sha256 differs from the one its manifest recorded."""


class RarToolMissingError(RuntimeError):
    """No program that extracts RAR archives is installed."""


class FolderNotWritableError(RuntimeError):
    """A file must be written into a folder that cannot be created or written to."""


def require_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that a file can be created in it; else say which folder and what to do.

    Called only where something is about to be written, so verifying a complete
    download kept in a read-only folder still works.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".fsrlib-write-check-"):
            pass
    except OSError as err:
        raise _not_writable(folder, err) from err


def _not_writable(folder: Path, err: OSError) -> FolderNotWritableError:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    where = folder if existing == folder else f"{folder} (it cannot be created in {existing})"
    fix = (f"move the file {existing} away (it stands where a folder is needed)" if existing.is_file()
           else f"make it writable (`chmod u+w {existing}`)")
    return FolderNotWritableError(
        f"cannot write the benchmark's files into {where}: {err.strerror or err}. Choose a folder you can write to "
        f"(`--data-dir DIR`, or the FSRLIB_DATA environment variable), or {fix}.")


def sha256sum(path: str | Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class Manifest:
    """The per-folder record of what was fetched: ``{filename: {sha256, size, url, recorded, unpacked}}``."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, filename: str) -> dict | None:
        return self.entries.get(filename)

    def record(self, filename: str, **fields) -> None:
        self.entries.setdefault(filename, {}).update(fields)
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as err:
            raise _not_writable(self.path.parent, err) from err


def verify_existing(path: Path, manifest: Manifest) -> None:
    """Check a file already on disk against the manifest, or record it if the manifest has no entry."""
    digest = sha256sum(path)
    entry = manifest.get(path.name)
    if entry is None:
        manifest.record(path.name, sha256=digest, size=path.stat().st_size, url=None, recorded=_now(),
                        note="recorded from a file already on disk")
    elif entry["sha256"] != digest:
        raise ChecksumMismatchError(
            f"{path} has sha256 {digest[:16]}..., but {manifest.path} recorded {entry['sha256'][:16]}... when it "
            "was first fetched: the file was changed or damaged. Delete it to fetch it again (or delete its "
            "manifest entry if you replaced it on purpose).")


def _fetch_one(remote: RemoteFile, folder: Path, manifest: Manifest, progress: bool,
               retries: int) -> tuple[Path | None, list[str]]:
    pooch.get_logger().setLevel(logging.WARNING)  # its "use this known_hash" advice: the manifest does that
    entry = manifest.get(remote.filename)
    known = f"sha256:{entry['sha256']}" if entry else None
    errors = []
    for url in remote.urls:
        for attempt in range(1 + retries):
            try:
                downloader = pooch.downloaders.choose_downloader(url, progressbar=progress)
                path = Path(pooch.retrieve(url, known_hash=known, fname=remote.filename, path=folder,
                                           downloader=downloader))
            except ValueError as exc:  # pooch: the hash of what arrived differs from the recorded one
                errors.append(f"{url}: sha256 differs from the one recorded in {manifest.path.name} ({exc})")
                break
            except Exception as exc:  # noqa: BLE001 - requests/ftplib/OS errors: report them all per mirror
                status = getattr(getattr(exc, "response", None), "status_code", None)
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
                if status is not None and 400 <= status < 500:
                    break  # 404 and friends will not change on retry
                time.sleep(min(2 ** attempt, 10) * 0.1)
                continue
            if entry is None:
                manifest.record(remote.filename, sha256=sha256sum(path), size=path.stat().st_size, url=url,
                                recorded=_now())
            log.info("fetched %s from %s", remote.filename, url)
            return path, errors
    return None, errors


def fetch_file(remote: RemoteFile, folder: str | Path, *, progress: bool = True, retries: int = 2) -> RemoteFile:
    """Make ``remote`` (or one of its alternatives) present and verified in ``folder``; returns which one."""
    folder = Path(folder)
    manifest = Manifest(folder / MANIFEST)
    all_errors = []
    for candidate in (remote, *remote.alternatives):
        path = folder / candidate.filename
        if path.is_file():
            verify_existing(path, manifest)
            return candidate
    require_writable(folder)  # before any transfer, so a read-only folder is not reported as failed mirrors
    for candidate in (remote, *remote.alternatives):
        path, errors = _fetch_one(candidate, folder, manifest, progress, retries)
        all_errors += errors
        if path is not None:
            return candidate
    names = " or ".join(c.filename for c in (remote, *remote.alternatives))
    advice = "Nothing partial was kept. Check the connection and rerun (finished files are kept), or put the file " \
             "in that folder by hand."
    if any("sha256 differs" in e for e in all_errors):
        advice = (f"What a mirror served differs from what {MANIFEST} recorded on the first fetch: the file changed "
                  "upstream or arrived corrupt, and it was not kept. If the change is expected, delete the file's "
                  f"entry from {folder / MANIFEST} and rerun.")
    raise DownloadError(f"could not fetch {names} into {folder}; every mirror failed:\n  " + "\n  ".join(all_errors)
                        + "\n" + advice)


def rar_command(archive: Path, dest: Path) -> list[str]:
    """The command that extracts a (multi-volume) RAR archive with the first tool found on PATH."""
    tools: list[tuple[str, Callable[[str], list[str]]]] = [
        ("unrar", lambda exe: [exe, "x", "-y", "-idq", str(archive), f"{dest}{os.sep}"]),
        ("unar", lambda exe: [exe, "-q", "-f", "-o", str(dest), str(archive)]),
        ("7zz", lambda exe: [exe, "x", "-y", "-bd", f"-o{dest}", str(archive)]),
        ("7z", lambda exe: [exe, "x", "-y", "-bd", f"-o{dest}", str(archive)]),
    ]
    for name, build in tools:
        exe = shutil.which(name)
        if exe:
            return build(exe)
    raise RarToolMissingError(
        f"{archive.name} is a RAR archive and no RAR extractor is installed (looked for unrar, unar, 7zz, 7z). "
        "Install unar (Debian/Ubuntu/Colab: `apt install unar`; macOS: `brew install unar`), which reads "
        "multi-volume RAR; Debian's 7zip package alone cannot (its RAR codec is in non-free 7zip-rar). Then rerun: "
        "the downloaded volumes are kept and will not be fetched again.")


def _merge_into(src: Path, dest: Path) -> None:
    """Move the unpacked tree ``src`` into ``dest``. A file already there with the same bytes is kept as it is (a
    repeated or resumed unpack); one with other bytes is never replaced: a ``DownloadError`` names it (it may be a
    file the user edited, e.g. a corrected query box) and nothing of the user's is lost."""
    clashes = _clashes(src, dest)
    if clashes:
        shown = ", ".join(str(c) for c in clashes[:3]) + (", ..." if len(clashes) > 3 else "")
        raise DownloadError(f"unpacking would replace {len(clashes)} file(s) in {dest} that differ from the archive's "
                            f"copy ({shown}); fsrlib does not overwrite them. Move them away (or delete them if "
                            "they are not yours) and rerun.")
    _move_tree(src, dest)


def _clashes(src: Path, dest: Path) -> list[Path]:
    """Files under ``dest`` that the tree ``src`` would replace with other content (or by a folder)."""
    found = []
    for item in src.iterdir():
        target = dest / item.name
        if not (target.exists() or target.is_symlink()):
            continue
        if item.is_dir() and target.is_dir() and not target.is_symlink():
            found += _clashes(item, target)
        elif item.is_dir() or not target.is_file() or sha256sum(item) != sha256sum(target):
            found.append(target)
    return found


def _move_tree(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        target = dest / item.name
        if item.is_dir() and target.is_dir():
            _move_tree(item, target)
        elif not target.exists():
            os.replace(item, target)


def unpack(remote: RemoteFile, folder: Path) -> None:
    """Unpack ``remote`` (already in ``folder``) into ``folder / remote.into``, atomically per archive."""
    manifest = Manifest(folder / MANIFEST)
    entry = manifest.get(remote.filename) or {}
    dest = (folder / remote.into).resolve()
    if remote.unpack is None or (entry.get("unpacked") and dest.exists()):
        return
    require_writable(folder)
    staging = folder / f".unpacking-{remote.filename}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    archive = folder / remote.filename
    log.info("unpacking %s into %s", remote.filename, dest)
    try:
        if remote.unpack == "tar":
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter="data")
            except tarfile.TarError as exc:
                raise DownloadError(f"{archive} is not a readable tar archive ({exc}); delete it and rerun") from exc
        elif remote.unpack == "rar":
            result = subprocess.run(rar_command(archive, staging), capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise DownloadError(f"extracting {archive} failed (exit {result.returncode}): "
                                    f"{(result.stderr or result.stdout).strip()[-500:]}")
        else:
            raise ValueError(f"unknown unpack kind {remote.unpack!r}")
        content = staging
        tops = list(staging.iterdir())
        if remote.strip_top and len(tops) == 1 and tops[0].is_dir():
            content = tops[0]
        _merge_into(content, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest.record(remote.filename, unpacked=str(remote.into))


def fetch_benchmark(name: str, data_dir: str | Path, *, mirror: str | None = None, progress: bool = True,
                    retries: int = 2, files: tuple[RemoteFile, ...] | None = None) -> Path:
    """Fetch, verify and unpack benchmark ``name`` under ``data_dir``; returns its folder.

    ``mirror`` is a base URL tried first for every file (a local copy). Safe to
    rerun: verified files are not fetched again and unpacked archives are not
    unpacked again. ``files`` replaces the benchmark's file list (tests, private mirrors).
    """
    if name not in SOURCES:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(SOURCES)}")
    folder_name, listed = SOURCES[name]
    files = listed if files is None else files
    if mirror:
        files = with_mirror(files, mirror)
    folder = Path(data_dir) / folder_name
    got = [fetch_file(f, folder, progress=progress, retries=retries) for f in files]
    for remote in got:
        unpack(remote, folder)
    log.info("%s ready in %s", name, folder)
    return folder


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
