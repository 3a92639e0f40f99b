"""Mounts: which filesystem a folder lives on, and whether that filesystem is shared over a network.

The watcher asks this to choose, per folder, between inotify (local filesystems) and polling
(network filesystems, where inotify never hears of writes made by other clients). The answer comes
from the mount table (`/proc/mounts` on Linux): the mount whose mount point is the longest prefix
of the folder's real path, the last one listed when mounts are stacked on one point. Mount points
in that table escape spaces, tabs, newlines and backslashes as octal (`\\040`); they are decoded.

This module only reads the mount table; it never mounts, stats a remote server or guesses from a
path's name. Where there is no mount table (not Linux), every filesystem is reported as unknown
(`""`) and treated as local.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PROC_MOUNTS",
    "NETWORK_FILESYSTEMS",
    "Mount",
    "parse_mounts",
    "read_mounts",
    "filesystem_type",
    "is_network_filesystem",
]

PROC_MOUNTS = Path("/proc/mounts")

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "gpfs", "beegfs",
    "afs", "openafs", "ncpfs", "coda", "davfs", "gfs2", "ocfs2", "orangefs", "pvfs2", "cvfs", "panfs",
    "fuse.sshfs", "fuse.glusterfs", "fuse.cephfs", "fuse.ceph-fuse", "fuse.s3fs", "fuse.rclone",
    "fuse.gcsfuse", "fuse.juicefs", "fuse.davfs", "fuse.smbnetfs", "fuse.beegfs",
})  # fmt: skip
"""Filesystem types whose files other hosts may write (shared or cluster filesystems): polled."""

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of the mount table."""

    device: str
    mount_point: str
    fs_type: str


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """The mounts listed in mount-table text (the format of `/proc/mounts`), in order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return mounts


def read_mounts(mounts_file: str | os.PathLike[str] = PROC_MOUNTS) -> list[Mount]:
    """The mounts in `mounts_file`; none when it cannot be read."""
    try:
        raw = Path(mounts_file).read_bytes()
    except OSError:
        return []
    return parse_mounts(os.fsdecode(raw))


def _is_under(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def filesystem_type(path: str | os.PathLike[str], *, mounts_file: str | os.PathLike[str] = PROC_MOUNTS) -> str:
    """Type of the filesystem holding `path` (`"ext4"`, `"nfs4"`, ...), `""` when unknown."""
    real = os.path.realpath(path)
    best: Mount | None = None
    for mount in read_mounts(mounts_file):
        if _is_under(real, mount.mount_point) and (best is None or len(mount.mount_point) >= len(best.mount_point)):
            best = mount  # `>=`: of mounts stacked on one point, the last listed is the one seen
    return best.fs_type if best else ""


def is_network_filesystem(path: str | os.PathLike[str], *, mounts_file: str | os.PathLike[str] = PROC_MOUNTS) -> bool:
    """Whether `path` is on a filesystem other hosts may write to (see `NETWORK_FILESYSTEMS`)."""
    return filesystem_type(path, mounts_file=mounts_file) in NETWORK_FILESYSTEMS
