"""(Re)generate fixtures/packs/: databroker-pack folders written by databroker-pack itself.

databroker-pack needs databroker 1.x, which is no dependency of this project (nor of its extras):
run this script with the Python of a throwaway venv that has them, never the project's venv:

    python3 -m venv /tmp/dbpack-venv
    /tmp/dbpack-venv/bin/pip install databroker-pack==0.3.0 databroker==1.2.5 suitcase-jsonl==0.2.2 \
        suitcase-msgpack==0.3.0 suitcase-utils==0.5.3
    /tmp/dbpack-venv/bin/python scripts/make_pack_fixtures.py

(suitcase-utils 0.5.4 closes every file of databroker-pack's shared file manager at the end of each
run, then fails on the second run's close: "I/O operation on closed file"; 0.5.3 does not.)

It stages three fixture runs (good/scan_baseline.jsonl: no external data; moved/npy_seq_moved.jsonl
and moved/legacy_ad_moved.jsonl: legacy Resources under the absolute root /nsls2/data/tst/proposals/2024,
files in fixtures/moved/data) as a databroker 1.x JSONL catalog whose root_map points that root at
a staging copy under /tmp/dbpack-stage, and runs the `databroker-pack` command on it (the catalog is
found through an intake catalog file under XDG_DATA_HOME, as databroker 1.x finds any), with a fixed
`--salt` so that the hashed roots do not change from one run of the script to the next:

- packs/jsonl-copy/     `--format jsonl --copy-external`: Resource roots replaced by 32-hex ids, the
                        files copied under external_files/<id>/, root_map id -> external_files/<id>;
- packs/msgpack-copy/   the same with `--format msgpack` (databroker-pack's default format);
- packs/msgpack-nocopy/ `--format msgpack` without copies: root_map id -> the absolute staging root
                        of the writing machine (/tmp/dbpack-stage/...), the manifests list the files
                        there; reading it needs `--root-map /tmp/dbpack-stage/proposals-2024=fixtures/moved`.

databroker 1.x finds the files of a Resource through a handler's `get_file_list`; the two specs the
runs use (NPY_SEQ, AD_HDF5_SWMR_STREAM) have no handler installed with databroker, so the small
handlers below (ours), named in the source catalog's `handler_registry`, say which files they read. The absolute paths databroker-pack writes into
catalog.yml (`args.paths`) are those of this machine at generation time, as on any real pack.
Nothing here is imported by the ingester.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
PACKS = FIXTURES / "packs"
FOREIGN_ROOT = "/nsls2/data/tst/proposals/2024"
STAGE = Path("/tmp/dbpack-stage/proposals-2024")
SALT = "bluesky-ingester-fixtures"
RUNS = [FIXTURES / "good" / "scan_baseline.jsonl", FIXTURES / "moved" / "npy_seq_moved.jsonl",
        FIXTURES / "moved" / "legacy_ad_moved.jsonl"]  # fmt: skip
PACK_VARIANTS = {
    "jsonl-copy": ["--format", "jsonl", "--copy-external"],
    "msgpack-copy": ["--format", "msgpack", "--copy-external"],
    "msgpack-nocopy": ["--format", "msgpack"],
}


class NpySeqFiles:
    """NPY_SEQ: one `<root>/<resource_path>_<index>.npy` file a datum."""

    def __init__(self, filename, root=""):
        self.base = os.path.join(root, filename)

    def __call__(self, index):
        import numpy

        return numpy.load(f"{self.base}_{index}.npy")

    def get_file_list(self, datum_kwargs_gen):
        return [f"{self.base}_{kwargs['index']}.npy" for kwargs in datum_kwargs_gen]


class SingleFile:
    """AD_HDF5_SWMR_STREAM: every datum reads the one HDF5 file of the resource."""

    def __init__(self, filename, root="", **kwargs):
        self.filename = os.path.join(root, filename)

    def __call__(self, **kwargs):
        raise NotImplementedError("only the file list is needed to pack")

    def get_file_list(self, datum_kwargs_gen):
        return [self.filename]


def stage(work: Path) -> Path:
    """The runs in a folder of their own, and their files at the staging root; the intake catalog file."""
    runs = work / "runs"
    runs.mkdir()
    for run in RUNS:
        shutil.copy(run, runs / run.name)
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    for name in ("f7c030_0.npy", "f7c030_1.npy", "f7c030_2.npy", "legacy-ad-frames.h5"):
        (STAGE / "data").mkdir(exist_ok=True)
        shutil.copy(FIXTURES / "moved" / "data" / name, STAGE / "data" / name)
    intake = work / "xdg" / "intake"
    intake.mkdir(parents=True)
    (intake / "fixtures.yml").write_text(
        "sources:\n"
        "  fixtures:\n"
        "    driver: bluesky-jsonl-catalog\n"
        f"    args:\n      paths: ['{runs}/*.jsonl']\n"
        f"      root_map:\n        '{FOREIGN_ROOT}': '{STAGE}'\n"
        "      handler_registry:\n"
        "        NPY_SEQ: make_pack_fixtures.NpySeqFiles\n"
        "        AD_HDF5_SWMR_STREAM: make_pack_fixtures.SingleFile\n"
    )
    return work / "xdg"


def main() -> None:
    try:
        import databroker_pack  # noqa: F401
    except ImportError:
        sys.exit("needs databroker-pack and databroker 1.x: see this script's docstring")
    with tempfile.TemporaryDirectory() as work:
        xdg = stage(Path(work))
        env = {**os.environ, "XDG_DATA_HOME": str(xdg), "PYTHONPATH": str(Path(__file__).parent), "TQDM_DISABLE": "1"}
        command = Path(sys.executable).with_name("databroker-pack")
        if PACKS.exists():
            shutil.rmtree(PACKS)
        PACKS.mkdir()
        for name, options in PACK_VARIANTS.items():
            args = [str(command), "fixtures", "--all", str(PACKS / name), "--salt", SALT]
            subprocess.run([*args, *options], env=env, cwd=work, check=True)
            print(f"wrote {PACKS / name}")
        shutil.rmtree(STAGE.parent)  # the writing machine's root: it is not there where the packs are read


if __name__ == "__main__":
    main()
