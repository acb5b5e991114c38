"""Where fsrlib keeps what it builds (caches) and looks for benchmarks (data)."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _env_folder(variable: str, default: Path) -> Path:
    """The folder ``$variable`` names, made absolute, or ``default`` when it is unset or empty (an empty value
    means "not set", as in the XDG conventions, never "the current directory")."""
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser().absolute() if value else default


def cache_root() -> Path:
    """Feature and dataset cache: ``$FSRLIB_CACHE``, else ``~/.cache/fsrlib``."""
    return _env_folder("FSRLIB_CACHE", Path.home() / ".cache" / "fsrlib")


def data_root() -> Path:
    """Where benchmarks are downloaded: ``$FSRLIB_DATA``, else ``~/fsrlib_data``."""
    return _env_folder("FSRLIB_DATA", Path.home() / "fsrlib_data")


def dev_data_root() -> Path | None:
    """Folder of development subsets (``holidays-subset/``, ``paris6k-subset/``): ``$FSRLIB_DEV_DATA``, if set.

    ``make`` sets it to ``../shared/data`` beside the checkout; a reader's laptop usually has none.
    """
    value = os.environ.get("FSRLIB_DEV_DATA")
    return Path(value).expanduser() if value else None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of one file's bytes (see :func:`files_sha256`)."""
    return files_sha256([path])[0]


def files_sha256(paths: Sequence[str | Path]) -> list[str]:
    """SHA-256 of each file's bytes, computed once and remembered by the file's identity on disk (size, inode,
    modification and status-change times), so a photo replaced in place, even by one of the same size and
    modification time, gets a new digest, while an unchanged file is not read again. The memo is a small
    SQLite table in :func:`cache_root` (safe for concurrent processes); where it cannot be opened or written,
    digests are computed every time. A missing file raises ``FileNotFoundError`` naming it."""
    import time

    identities = []
    for path in paths:
        path = Path(path).absolute()
        st = path.stat()
        identities.append((str(path), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
    todo = [i for i in identities if i not in _DIGESTS]
    if not todo:
        return [_DIGESTS[i] for i in identities]
    if len(_DIGESTS) + len(todo) > MEMO_IN_MEMORY:
        _DIGESTS.clear()  # bounded memory; the on-disk memo still answers
    memo = _open_digest_memo()
    known = _memo_lookup(memo, todo) if memo is not None else {}
    if known is None:  # the memo was damaged and has been removed: start a fresh one
        memo, known = _open_digest_memo(), {}
    digests = {**known, **{i: _read_sha256(i[0]) for i in todo if i not in known}}
    # a file changed within the last seconds could change again within the same timestamp tick (git's "racy
    # clean" case): its digest is used now but not remembered
    settled = time.time_ns() - RACY_NS
    remember = {i: d for i, d in digests.items() if max(i[3], i[4]) < settled}
    _DIGESTS.update(remember)
    if memo is not None:
        _memo_store(memo, [(*i, d) for i, d in remember.items() if i not in known])
    return [_DIGESTS.get(i) or digests[i] for i in identities]


#: At most this many digests are kept in memory (about 0.5 KB each).
MEMO_IN_MEMORY = 200_000
#: Files modified more recently than this are hashed but not remembered.
RACY_NS = 3_000_000_000


def _memo_lookup(memo, identities: list[tuple]) -> dict[tuple, str] | None:
    """The digests the memo holds for ``identities`` whose file is unchanged (same size, inode and times);
    ``None`` if the memo turned out damaged (it is then closed and removed)."""
    import sqlite3

    found = {}
    try:
        for identity in identities:
            row = memo.execute("SELECT size, inode, mtime_ns, ctime_ns, sha256 FROM digest WHERE path = ?",
                               (identity[0],)).fetchone()
            if row is not None and tuple(row[:4]) == identity[1:]:
                found[identity] = row[4]
    except sqlite3.DatabaseError:
        _reset_digest_memo(memo)
        return None
    return found


def _memo_store(memo, rows: list[tuple]) -> None:
    import sqlite3

    try:
        if rows:
            with memo:
                memo.executemany("INSERT OR REPLACE INTO digest VALUES (?, ?, ?, ?, ?, ?)", rows)
    except sqlite3.OperationalError:
        pass  # read-only or busy: only costs a recomputation next time
    except sqlite3.DatabaseError:
        _reset_digest_memo(memo)
    finally:
        memo.close()


def _reset_digest_memo(memo) -> None:
    """A damaged memo (fsrlib's own file) is removed with a warning, so the next call starts a fresh one."""
    memo.close()
    path = cache_root() / DIGEST_MEMO
    warnings.warn(f"the file digest memo {path} is damaged; removing it (digests are recomputed once)",
                  stacklevel=4)
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


#: The SQLite file in :func:`cache_root` that remembers file digests.
DIGEST_MEMO = "file-digests.sqlite3"
_DIGESTS: dict[tuple, str] = {}


def _read_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _open_digest_memo(retry: bool = True):  # -> sqlite3.Connection | None
    """The digest memo, created if absent (a damaged one is replaced); ``None`` where it cannot be opened (a
    read-only cache)."""
    import sqlite3

    try:
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        memo = sqlite3.connect(root / DIGEST_MEMO, timeout=60)
    except (OSError, sqlite3.Error):
        return None
    schema_check = "SELECT size, inode, mtime_ns, ctime_ns, sha256 FROM digest LIMIT 1"
    try:
        memo.execute("CREATE TABLE IF NOT EXISTS digest (path TEXT PRIMARY KEY, size INTEGER, inode INTEGER, "
                     "mtime_ns INTEGER, ctime_ns INTEGER, sha256 TEXT)")
        memo.execute(schema_check).fetchall()
        return memo
    except sqlite3.OperationalError as err:
        if "readonly" in str(err) or "locked" in str(err):  # usable for reading only, if the table is there
            try:
                memo.execute(schema_check).fetchall()
                return memo
            except sqlite3.Error:
                memo.close()
                return None
    except sqlite3.DatabaseError:
        pass
    _reset_digest_memo(memo)  # damaged, or another schema: fsrlib's own file, replaced
    return _open_digest_memo(retry=False) if retry else None


def cache_dir_or_default(cache_dir: str | Path | None, *parts: str) -> Path:
    """``cache_dir`` (a caller's choice) or :func:`cache_root`, joined with ``parts``: the one place every cache
    resolves its folder."""
    return (Path(cache_dir) if cache_dir is not None else cache_root()).joinpath(*parts)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed onto ``path`` when the block succeeds, removed when
    it fails, so a reader never sees a half-written file and an interrupted write leaves nothing behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: The key under which :func:`save_checkpoint` stores the checkpoint's own checksum.
CHECKSUM_KEY = "fsrlib_sha256"


def state_sha256(state: object) -> str:
    """Checksum of a checkpoint's content: every tensor's dtype, shape and bytes and every other value's ``repr``,
    walked in key order, so a changed weight, optimiser moment, RNG state or history entry changes it."""
    import torch

    digest = hashlib.sha256()

    def walk(value: object) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, np.ndarray):
            digest.update(f"A{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, dict):
            digest.update(b"{")
            for k in sorted(value, key=repr):
                digest.update(repr(k).encode())
                walk(value[k])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[" if isinstance(value, list) else b"(")
            for v in value:
                walk(v)
            digest.update(b"]")
        else:
            digest.update(repr(value).encode())

    walk(state)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` ``state`` with its :func:`state_sha256` atomically at ``path``: the one writer of every
    fsrlib model checkpoint (G and D, the ISR networks, the student), read back by :func:`read_checkpoint`."""
    import torch

    with atomic_path(path) as tmp:
        torch.save({**state, CHECKSUM_KEY: state_sha256(state)}, tmp)


def read_checkpoint(path: str | Path, device: str = "cpu", required: tuple[str, ...] = (), *,
                    weights_only: bool = False) -> dict | None:
    """The dict :func:`save_checkpoint` wrote at ``path``, its checksum verified; ``None`` if there is none or it
    is unusable.

    An unusable file (truncated, not a checkpoint, lacking one of the ``required`` keys, without a checksum or
    failing it: damaged or edited) is reported with a warning that names it and ``None`` is returned, so the
    caller trains again and writes a good one over it. ``weights_only=True`` refuses pickled objects (tensors and
    plain types only), for checkpoints that hold nothing else.
    """
    path = Path(path)
    if not path.is_file():
        return None
    state, problem = checked_checkpoint(path, device, required, weights_only=weights_only)
    if problem:
        warnings.warn(f"model checkpoint {path} is unusable because {problem}; training again", stacklevel=3)
        return None
    return state


def checked_checkpoint(path: Path, device: str = "cpu", required: tuple[str, ...] = (), *,
                       weights_only: bool = False) -> tuple[dict | None, str | None]:
    """``(state, None)`` for a good checkpoint at ``path`` (see :func:`read_checkpoint`), else ``(None, what is
    wrong with it)``."""
    import torch  # here, so that finding folders does not import torch

    try:
        state = torch.load(path, map_location=device, weights_only=weights_only)
        if not isinstance(state, dict):
            problem = "it is not a checkpoint dict"
        elif missing := [k for k in (*required, CHECKSUM_KEY) if k not in state]:
            problem = f"it lacks {', '.join(missing)}"
        else:
            stored = state.pop(CHECKSUM_KEY)
            problem = None if stored == state_sha256(state) else "its checksum does not match (damaged or edited)"
    except Exception as err:  # noqa: BLE001 - zip, pickle and EOF errors all mean "unreadable"
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    return (None, problem) if problem else (state, None)


def written_by_fsrlib(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint :func:`save_checkpoint` wrote (even a damaged or edited one), told without
    unpickling it: its pickle names :data:`CHECKSUM_KEY`. Files under :func:`cache_root` count as fsrlib's too."""
    import zipfile

    path = Path(path).absolute()
    if path.is_relative_to(cache_root()):
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return bool(pickles) and CHECKSUM_KEY.encode() in archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile, KeyError):
        return False


def refuse_to_overwrite(path: str | Path, what: str = "checkpoint") -> None:
    """Raise ``FileExistsError`` if ``path`` holds a file fsrlib did not write (:func:`written_by_fsrlib`), before
    any work that would end by writing over it."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not (path.is_file() and written_by_fsrlib(path)):
        raise FileExistsError(f"{path} exists and is not a {what} fsrlib wrote; fsrlib will not write over it. "
                              f"Choose another {what} path, or move that file away.")


def discard(path: str | Path, what: str) -> None:
    """Remove an unusable file fsrlib wrote (a cache entry, a chunk) so it is rebuilt; where it cannot be removed
    (a read-only cache), raise a ``PermissionError`` that names it and says what to do."""
    path = Path(path)
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        raise PermissionError(
            f"{what} {path} is unusable and cannot be removed ({err.strerror or err}); the cache folder is not "
            f"writable. Point FSRLIB_CACHE (or cache_dir) at a writable folder, or make {path.parent} "
            "writable, and run again.") from err


@contextmanager
def locked(paths: Sequence[str | Path], what: str = "cache entry", *, lock_dir: Path | None = None) -> Iterator[None]:
    """Hold an exclusive lock (:mod:`filelock`) on each of ``paths`` for the block, so two processes building the
    same thing do not interleave: the second waits, says so, and then finds it built. Locks are taken in sorted
    order (no deadlock) and die with their process (no stale lock). The lock file is ``<path>.lock`` beside what it
    guards (kept, as filelock's are: removing it would race), or, with ``lock_dir``, a file named by the path's
    digest in that folder (for folders that are not fsrlib's to write beside). Lock files are made group- and
    world-writable, so a cache shared by several users works."""
    from filelock import FileLock, Timeout

    locks = []
    try:
        for path in sorted({Path(p).absolute() for p in paths}):
            if lock_dir is None:
                lock_file = Path(str(path) + ".lock")
            else:
                lock_file = lock_dir / (hashlib.sha256(str(path).encode()).hexdigest()[:24] + ".lock")
            lock = FileLock(str(lock_file), mode=0o666)
            try:
                lock_file.parent.mkdir(parents=True, exist_ok=True)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    warnings.warn(f"another process is building the {what} {path}; waiting for it", stacklevel=3)
                    lock.acquire()
            except PermissionError as err:
                raise PermissionError(
                    f"cannot lock the {what} {path} ({lock_file}: {err.strerror or err}); the cache folder is not "
                    "writable by you. Point FSRLIB_CACHE (or cache_dir) at a writable folder and run again.") from err
            locks.append(lock)
        yield
    finally:
        for lock in reversed(locks):
            lock.release()


def canonical_json(value: object) -> str:
    """``value`` as JSON with sorted keys (anything JSON cannot write, as its ``str``): the one spelling of a key
    that every cache digest and stored key is made from, so that equal settings always give equal digests."""
    return json.dumps(value, sort_keys=True, default=str)


def json_digest(value: object, length: int | None = 20) -> str:
    """SHA-256 of :func:`canonical_json` of ``value``, in hex, cut to ``length`` characters (``None``: all 64): the
    name of a cache entry (features, bit-rate queries, ISR networks, students, generators)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Checksum of named arrays (their bytes, in name order)."""
    return hashlib.sha256(b"".join(np.ascontiguousarray(arrays[k]).tobytes() for k in sorted(arrays))).hexdigest()


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], key: dict) -> None:
    """Write named arrays with their key and checksum as one ``.npz``, atomically: the one format of every cached
    array (features, bit-rate queries, the student's pairs)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, key=canonical_json(key), sha256=arrays_sha256(arrays))


def load_arrays(path: str | Path, key: dict, names: Sequence[str], *, what: str = "cache entry",
                check: Callable[[dict[str, np.ndarray]], str | None] | None = None) -> dict[str, np.ndarray] | None:
    """The arrays :func:`save_arrays` wrote at ``path`` for ``key``; ``None`` if there is none. A file that cannot be
    read, holds another key, fails its checksum or ``check`` (which returns what is wrong, or ``None``) is reported
    with a warning naming it (``what``), removed, and ``None`` returned, so the caller rebuilds it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {n: data[n] for n in names}
            stored, digest = json.loads(str(data["key"])), str(data["sha256"])
        problem = None
        if stored != json.loads(canonical_json(key)):
            problem = "its key does not match (stale entry)"
        elif check is not None and (wrong := check(arrays)) is not None:
            problem = wrong
        elif arrays_sha256(arrays) != digest:
            problem = "its checksum does not match (corrupt)"
    except Exception as err:  # zip, JSON and missing-array errors all mean "unreadable"
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    if problem:
        warnings.warn(f"{what} {path} is unusable because {problem}; rebuilding it", stacklevel=3)
        discard(path, what)
        return None
    return arrays
