"""Where each benchmark's files come from, as data (used by :mod:`fsrlib.data.download`).

Every file lists its mirrors (tried in order) and how it unpacks; a file may name
an alternative (the legacy release under another name) tried when none of its
own mirrors answers. No checksums are published for these files: the first
fetch records a sha256 in the data folder's manifest and later runs verify it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

VGG = ("https://www.robots.ox.ac.uk/~vgg/data/", "http://www.robots.ox.ac.uk/~vgg/data/")
REVISITOP = ("http://cmp.felk.cvut.cz/revisitop/data/datasets/", "http://cmp.felk.cvut.cz/cnnimageretrieval/data/test/")
INRIA = ("ftp://ftp.inrialpes.fr/pub/lear/douze/data/",)
R1M = "http://ptak.felk.cvut.cz/revisitop/revisitop1m/"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its name on disk, its mirrors, and how it unpacks.

    ``unpack``: ``"tar"`` (any tar compression), ``"rar"`` (the first volume of a
    multi-volume RAR; the other volumes are plain files), or ``None``. ``into`` is
    the folder, relative to the benchmark folder, the archive's content goes to;
    ``strip_top`` drops a single top-level folder the archive wraps it in.
    """

    filename: str
    urls: tuple[str, ...]
    unpack: str | None = None
    into: str = "."
    strip_top: bool = False
    alternatives: tuple[RemoteFile, ...] = field(default_factory=tuple)


def _mirrors(bases: tuple[str, ...], rel: str) -> tuple[str, ...]:
    return tuple(base + rel for base in bases)


def _vgg_tar(dataset_dir: str, name: str, into: str, legacy: str | None = None) -> RemoteFile:
    alt = (RemoteFile(legacy, _mirrors(VGG, f"{dataset_dir}/{legacy}"), "tar", into),) if legacy else ()
    return RemoteFile(name, _mirrors(VGG, f"{dataset_dir}/{name}"), "tar", into, alternatives=alt)


OXFORD5K = (
    _vgg_tar("oxbuildings", "oxbuild_images-v1.tgz", "oxbuild_images", legacy="oxbuild_images.tgz"),
    _vgg_tar("oxbuildings", "gt_files_170407.tgz", "gt_files_170407"),
)
PARIS6K = (
    _vgg_tar("parisbuildings", "paris_1-v1.tgz", ".", legacy="paris_1.tgz"),
    _vgg_tar("parisbuildings", "paris_2-v1.tgz", ".", legacy="paris_2.tgz"),
    _vgg_tar("parisbuildings", "paris_120310.tgz", "paris_120310"),
)
HOLIDAYS = tuple(RemoteFile(f"jpg{i}.tar.gz", _mirrors(INRIA, f"jpg{i}.tar.gz"), "tar", ".") for i in (1, 2))
HOLIDAYS_ROTATED = (RemoteFile("holidays_rotated.tar.gz",
                               ("https://www.dropbox.com/s/f1z8pgzhkf52tcb/holidays_rotated.tar.gz?dl=1",),
                               "tar", "jpg_rotated", strip_top=True),)
FLICKR100K = tuple(
    RemoteFile(f"oxc1_100k.part{i:02d}.rar", _mirrors(VGG, f"oxbuildings/ox100k/oxc1_100k.part{i:02d}.rar"),
               "rar" if i == 1 else None, ".")
    for i in range(1, 41))
REVISITOP1M = (RemoteFile("revisitop1m.txt", (R1M + "revisitop1m.txt",)),) + tuple(
    RemoteFile(f"revisitop1m.{i}.tar.gz", (f"{R1M}jpg/revisitop1m.{i}.tar.gz",), "tar", "jpg")
    for i in range(1, 101))


def _gnd(name: str) -> RemoteFile:
    return RemoteFile(f"gnd_{name}.pkl", _mirrors(REVISITOP, f"{name}/gnd_{name}.pkl"))


#: Benchmark -> (folder under the data root, files). The revisited benchmarks share the original's folder.
SOURCES: dict[str, tuple[str, tuple[RemoteFile, ...]]] = {
    "oxford5k": ("oxford5k", OXFORD5K),
    "paris6k": ("paris6k", PARIS6K),
    "roxford5k": ("oxford5k", OXFORD5K + (_gnd("roxford5k"),)),
    "rparis6k": ("paris6k", PARIS6K + (_gnd("rparis6k"),)),
    "holidays": ("holidays", HOLIDAYS),
    "holidays_rotated": ("holidays", HOLIDAYS_ROTATED),
    "flickr100k": ("flickr100k", FLICKR100K),
    "revisitop1m": ("revisitop1m", REVISITOP1M),
}


def with_mirror(files: tuple[RemoteFile, ...], base: str) -> tuple[RemoteFile, ...]:
    """``files`` with ``base + filename`` tried before their own mirrors (a lab's local copy, a test server)."""
    base = base if base.endswith("/") else base + "/"
    return tuple(replace(f, urls=(base + f.filename, *f.urls), alternatives=with_mirror(f.alternatives, base))
                 for f in files)
