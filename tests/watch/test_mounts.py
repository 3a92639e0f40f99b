"""Mounts: the mount table is parsed (octal escapes decoded) and a folder is matched to its longest mount point."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ingester.watch.mounts import Mount, filesystem_type, is_network_filesystem, parse_mounts, read_mounts


def _fake_table(tmp_path: Path) -> tuple[Path, Path]:
    """A mount table whose mount points are real folders under tmp_path."""
    base = Path(os.path.realpath(tmp_path))
    for sub in ("nfs", "nfs/local", "my share", "stacked", "sshfs", "nfsish"):
        (base / sub).mkdir(parents=True)
    escaped = str(base / "my share").replace(" ", "\\040")
    text = "\n".join([
        "/dev/sda1 / ext4 rw,relatime 0 0",
        f"server:/export {base}/nfs nfs4 rw,vers=4.2,addr=10.0.0.1 0 0",
        f"/dev/sdb1 {base}/nfs/local xfs rw 0 0",
        f"//fileserver/share {escaped} cifs rw,vers=3.0 0 0",
        f"/dev/sdc1 {base}/stacked ext4 rw 0 0",
        f"server:/other {base}/stacked nfs rw 0 0",
        f"user@host:/data {base}/sshfs fuse.sshfs rw 0 0",
        f"/dev/sdd1 {base}/nfsish ext4 rw 0 0",
        "",
    ])  # fmt: skip
    table = tmp_path / "mounts"
    table.write_text(text)
    return table, base


def test_parse_decodes_octal_escapes():
    mounts = parse_mounts("//srv/a\\040b /mnt/with\\040space\\011tab cifs rw 0 0\nbroken line\n")
    assert mounts == [Mount("//srv/a b", "/mnt/with space\ttab", "cifs")]


def test_longest_mount_point_wins(tmp_path):
    table, base = _fake_table(tmp_path)
    assert filesystem_type(base / "nfs", mounts_file=table) == "nfs4"
    assert filesystem_type(base / "nfs" / "spool" / "deeper", mounts_file=table) == "nfs4"
    assert filesystem_type(base / "nfs" / "local" / "x", mounts_file=table) == "xfs"
    assert filesystem_type(base / "nfsish", mounts_file=table) == "ext4"  # a prefix of the name is not a parent
    assert filesystem_type("/", mounts_file=table) == "ext4"


def test_escaped_space_and_stacked_mounts(tmp_path):
    table, base = _fake_table(tmp_path)
    assert filesystem_type(base / "my share", mounts_file=table) == "cifs"
    assert filesystem_type(base / "stacked", mounts_file=table) == "nfs"  # the last mount on a point is the one seen


def test_network_filesystems(tmp_path):
    table, base = _fake_table(tmp_path)
    assert is_network_filesystem(base / "nfs" / "spool", mounts_file=table)
    assert is_network_filesystem(base / "my share", mounts_file=table)
    assert is_network_filesystem(base / "sshfs", mounts_file=table)
    assert not is_network_filesystem(base / "nfs" / "local", mounts_file=table)
    assert not is_network_filesystem(base / "nfsish", mounts_file=table)


def test_symlink_is_resolved(tmp_path):
    table, base = _fake_table(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(base / "nfs")
    assert filesystem_type(link, mounts_file=table) == "nfs4"


def test_no_mount_table_means_unknown_and_local(tmp_path):
    missing = tmp_path / "no-such-table"
    assert read_mounts(missing) == []
    assert filesystem_type(tmp_path, mounts_file=missing) == ""
    assert not is_network_filesystem(tmp_path, mounts_file=missing)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/mounts is Linux's")
def test_real_mount_table(tmp_path):
    assert filesystem_type(tmp_path) != ""
