"""A real Tiled server on loopback for the tests, and waiting for what it should come to hold."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

__all__ = ["free_port", "TiledServer", "wait_for"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TiledServer:
    """A SimpleTiledServer that can be stopped and started again on the same port and catalog."""

    def __init__(self, directory: Path, readable: Path):
        self.directory, self.readable, self.port = directory, readable, free_port()
        self.api_key = "watchtestkey0"
        self.server = None
        self.start()

    def start(self) -> None:
        from tiled.server import SimpleTiledServer

        self.server = SimpleTiledServer(
            directory=self.directory, api_key=self.api_key, port=self.port, readable_storage=[self.readable]
        )

    def stop(self) -> None:
        self.server.close()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def uids(self) -> list[str]:
        from tiled.client import from_uri

        client = from_uri(self.uri, api_key=self.api_key)
        try:
            return list(client)
        finally:
            client.context.close()

    def complete(self, uid: str) -> bool:
        from tiled.client import from_uri

        client = from_uri(self.uri, api_key=self.api_key)
        try:
            md = client[uid].metadata
            return "stop" in md and md["_ingest"]["state"] == "complete"
        finally:
            client.context.close()


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    """Wait until `condition()` is true (exceptions count as not yet), or fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")
