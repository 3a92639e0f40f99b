"""The operator's endpoint of `watch --metrics-port N`: Prometheus metrics at /metrics, health at /healthz.

Served by the standard library's WSGI server (wsgiref, one thread a request through
prometheus_client's `ThreadingWSGIServer`) in a daemon thread. /metrics is prometheus_client's own
WSGI app over the process's `IngestMetrics`; /healthz answers 200 with a short JSON when the
watcher's observers are alive, its scans are current, and the target and the ledger answer, and 503
otherwise (for systemd watchdogs and container probes). The target is named without credentials;
the API key is never shown.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from ingester.cli.opening import fail
from ingester.config import Settings, target_key
from ingester.ingest.metrics import IngestMetrics

__all__ = ["Health", "Operations", "serving_operations"]


@dataclass
class Health:
    """What /healthz looks at, attached as the command opens each (until then it is not healthy).

    `stale_after`: seconds without a finished full scan (since the start, before the first) after
    which the watcher's scanning counts as stuck (`watch`: two rescan intervals and a minute)."""

    stale_after: float
    watcher: Any = None
    target: Any = None
    ledger: Any = None
    started: float = field(default_factory=time.time)

    def check(self) -> tuple[bool, dict[str, Any]]:
        """Healthy or not, and the JSON that says why."""
        last_scan = self.watcher.last_scan_at if self.watcher is not None else None
        report = {
            "observer_alive": self.watcher is not None and self.watcher.alive(),
            "last_scan": datetime.fromtimestamp(last_scan, UTC).isoformat() if last_scan else None,
            "scans_current": time.time() - (last_scan or self.started) < self.stale_after,
            "target_reachable": self.target is not None and self.target.reachable(),
            "ledger_reachable": self.ledger is not None and self.ledger.reachable(),
        }
        healthy = all(value for name, value in report.items() if name != "last_scan")
        return healthy, {"status": "ok" if healthy else "unhealthy", **report}


class Operations:
    """One process's metrics and health, for the endpoint to serve."""

    def __init__(self, settings: Settings, *, stale_after: float):
        kind = "tiled" if settings.tiled_uri else "embedded"
        self.metrics = IngestMetrics(target_kind=kind, target=target_key(settings))
        self.health = Health(stale_after=stale_after)
        self._metrics_app = make_wsgi_app(self.metrics.registry)

    def app(self, environ: dict, start_response: Any) -> list[bytes]:
        """The WSGI app: /metrics (and /), /healthz; anything else is 404."""
        path = environ.get("PATH_INFO", "/")
        if path in ("/metrics", "/"):
            return self._metrics_app(environ, start_response)
        if path == "/healthz":
            healthy, report = self.health.check()
            return _json(start_response, "200 OK" if healthy else "503 Service Unavailable", report)
        return _json(start_response, "404 Not Found", {"error": f"no {path} here: /metrics or /healthz"})


def _json(start_response: Any, status: str, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr for each scrape."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serving_operations(
    settings: Settings, port: int | None, host: str, *, stale_after: float
) -> Iterator[Operations | None]:
    """The metrics and health of this process, served on `host:port` meanwhile (port 0: any free
    one; the log says where); exit 2 when the address cannot be bound. No port: None, nothing served.
    `stale_after`: see `Health`."""
    if port is None:
        yield None
        return
    from ingester.logs import logger

    operations = Operations(settings, stale_after=stale_after)

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = make_server(host, port, operations.app, Server, handler_class=_QuietHandler)
    except OSError as err:
        raise fail(f"cannot serve metrics on {host}:{port}: {err.strerror or err}") from None
    thread = threading.Thread(target=server.serve_forever, name="ingester-metrics", daemon=True)
    thread.start()
    url = f"http://{f'[{host}]' if ':' in host else host}:{server.server_port}"
    logger.info("metrics at {}/metrics, health at {}/healthz", url, url)
    try:
        yield operations
    finally:
        server.shutdown()
        server.server_close()
