"""What a command imports: `--help` and `validate` stay light (a guard, not a timed test).

Tiled's server, bluesky-tiled-plugins and dask each cost seconds and hundreds of MB to import; a
command that writes nothing must not pay for them. Each command runs in a fresh interpreter, which
prints at exit which of the heavy packages ended up in `sys.modules`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.corpus import FIXTURES

HEAVY = ("tiled.server", "tiled.catalog", "bluesky_tiled_plugins", "dask", "pandas", "xarray", "numba")

_PROBE = (
    "import atexit, json, sys\n"
    "heavy = {heavy!r}\n"
    "atexit.register(lambda: print('IMPORTED ' + json.dumps(sorted({{m.split('.')[0] if m.split('.')[0] != 'tiled'"
    " else '.'.join(m.split('.')[:2]) for m in sys.modules}} & set(heavy)))))\n"
    "from ingester.cli.app import main\n"
    "sys.argv = ['ingester', *{args!r}]\n"
    "main()\n"
)


def heavy_imports(*args: str) -> tuple[list[str], subprocess.CompletedProcess]:
    code = _PROBE.format(heavy=HEAVY, args=list(args))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    marker = [line for line in done.stdout.splitlines() if line.startswith("IMPORTED ")]
    assert marker, done.stdout + done.stderr
    return json.loads(marker[-1].removeprefix("IMPORTED ")), done


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("validate", str(FIXTURES / "good")),  # legacy Resource/Datum and ophyd-async runs included
        ("validate", "--json", str(FIXTURES / "bad"), str(FIXTURES / "facility")),
    ],
    ids=["help", "validate-good", "validate-bad-and-facility"],
)
def test_commands_that_write_nothing_import_no_server_plugins_or_dask(args):
    imported, done = heavy_imports(*args)
    assert done.returncode in (0, 1), done.stderr  # validate exits 1 when a file is invalid
    assert "Traceback" not in done.stderr
    assert imported == [], f"`ingester {' '.join(args)}` imported {imported}"


def test_the_probe_sees_a_heavy_import():
    """The guard can fail: a command that writes into the embedded catalog does import Tiled's catalog."""
    imported, done = heavy_imports("ingest-dir", "--help")
    assert done.returncode == 0
    assert imported == []
    code = _PROBE.format(heavy=HEAVY, args=["--help"]).replace("from ingester", "import tiled.catalog\nfrom ingester")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    assert "tiled.catalog" in out and "dask" in out
