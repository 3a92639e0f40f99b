"""The facility fixtures (fixtures/facility/) ingested the way a user does: `ingest-dir` into the embedded
catalog or into a Tiled server, and read back through bluesky-tiled-plugins' client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy
from typer.testing import CliRunner

from ingester.cli.app import app
from support.corpus import EXPECTED, FIXTURES

__all__ = ["FACILITY", "Target", "facility_uid", "file_data", "event_values"]

FACILITY = FIXTURES / "facility"
runner = CliRunner()


def facility_uid(name: str, n: int = 0) -> str:
    entry = EXPECTED[f"facility/{name}"]
    return entry["run_details"][n]["uid"] if "run_details" in entry else entry["uid"]


def file_data(name: str) -> numpy.ndarray:
    """What /entry/data/data of fixtures/facility/data/NAME holds."""
    with h5py.File(FACILITY / "data" / name, "r") as fh:
        return fh["/entry/data/data"][()]


def event_values(name: str, stream: str, key: str, what: str = "data") -> list:
    """The values of `key` in the events of `stream` of the (first) run of facility/NAME."""
    from support.tree_compare import load_documents

    docs = load_documents(FACILITY / name)
    descriptors = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream}
    return [d[what][key] for n, d in docs if n == "event" and d["descriptor"] in descriptors]


class Target:
    """Where `ingest-dir` writes: the embedded catalog (`server` None) or a Tiled server on loopback.

    The facility files are copied into `folder` (the server's readable storage), with their data."""

    def __init__(self, tmp_path: Path, server: Any = None):
        self.folder = tmp_path / "facility"
        if not self.folder.exists():
            shutil.copytree(FACILITY, self.folder)
        self.server = server
        self.catalog = tmp_path / "catalog"
        self.ledger = f"sqlite:///{tmp_path / 'ledger.db'}"

    def path(self, name: str) -> Path:
        return self.folder / name

    def args(self) -> list[str]:
        if self.server is None:
            return ["--catalog", str(self.catalog)]
        return ["--tiled-uri", self.server.uri, "--ledger", self.ledger]

    def env(self) -> dict[str, str]:
        return {} if self.server is None else {"TILED_API_KEY": self.server.api_key}

    def invoke(self, command: str, *args: Any):
        """`ingester COMMAND ARGS... <target options>`."""
        argv = [command, *map(str, args), *self.args()]
        return runner.invoke(app, argv, env=self.env(), catch_exceptions=False)

    def ingest(self, *names_and_flags: str):
        """`ingester ingest-dir` of the named facility files (flags pass through)."""
        args = [str(self.path(a)) if a.endswith(".jsonl") else a for a in names_and_flags]
        return self.invoke("ingest-dir", *args)

    @contextmanager
    def client(self) -> Iterator[Any]:
        """The catalog root as bluesky-tiled-plugins' clients see it (BlueskyRun for runs)."""
        if self.server is None:
            from tiled.client import from_context

            from ingester.target.targets import open_embedded

            with open_embedded(self.catalog, [self.folder]) as target:
                yield from_context(target.context)
        else:
            from tiled.client import from_uri

            client = from_uri(self.server.uri, api_key=self.server.api_key)
            try:
                yield client
            finally:
                client.context.close()
