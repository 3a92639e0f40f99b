"""The door in front of a catalog that is served while the ingester writes it (`watch --serve`): clients only read.

Tiled's single-user mode has one API key, and it grants everything. Served by `watch --serve`, that key is
the writer's own (random, never shown) and anonymous clients may read. `ClientGate` stands in front of the
app: a request carrying the writer's key passes as it is; any other is stripped of its credentials (the
`Authorization` header, an `api_key` query parameter, the `tiled_api_key` cookie), so that Tiled sees an
anonymous reader, who may read and never write. With a client key (TILED_API_KEY), a request must present
it (in any of the places Tiled takes a key from) or is refused with 401; only the server's description
(`/api/v1/`, which a Tiled client reads before it sends its key) is open to anyone.

Nothing here logs or echoes a key.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

__all__ = ["ClientGate"]

Scope = MutableMapping[str, Any]
Message = Callable[..., Awaitable[Any]]

OPEN_PATHS = frozenset({"/api/v1", "/api/v1/"})
API_KEY_COOKIE = "tiled_api_key"  # tiled.server.utils.API_KEY_COOKIE_NAME
API_KEY_QUERY = "api_key"


class ClientGate:
    """ASGI middleware: the writer (its key in the `Authorization` header) writes; everyone else reads,
    with `client_key` when one is set. Lifespan and other scopes pass through untouched."""

    def __init__(self, app: Any, writer_key: str, client_key: str | None = None):
        self.app = app
        self.writer_header = f"Apikey {writer_key}".encode()
        self.client_key = client_key

    async def __call__(self, scope: Scope, receive: Message, send: Message) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if any(
            name == b"authorization" and secrets.compare_digest(value, self.writer_header) for name, value in headers
        ):
            await self.app(scope, receive, send)
            return
        if self.client_key and scope["path"] not in OPEN_PATHS and not self._presents_client_key(scope):
            await _refuse(scope, send)
            return
        await self.app(_anonymous(scope), receive, send)

    def _presents_client_key(self, scope: Scope) -> bool:
        expected = self.client_key.encode()
        return any(secrets.compare_digest(key.encode(), expected) for key in _presented_keys(scope))


def _presented_keys(scope: Scope) -> list[str]:
    """Every API key the request carries, wherever Tiled would take it from."""
    keys = []
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "apikey":
                keys.append(key.strip())
        elif name == b"cookie":
            keys += [value for name, value in _cookies(value) if name == API_KEY_COOKIE]
    query = scope.get("query_string", b"").decode("latin-1")
    keys += [value for name, value in parse_qsl(query, keep_blank_values=True) if name == API_KEY_QUERY]
    return keys


def _cookies(header: bytes) -> list[tuple[str, str]]:
    pairs = []
    for part in header.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            pairs.append((name, value))
    return pairs


def _anonymous(scope: Scope) -> Scope:
    """The request without any credential: no `Authorization`, no key cookie, no `api_key` query."""
    headers = []
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            continue
        if name == b"cookie":
            kept = "; ".join(f"{n}={v}" for n, v in _cookies(value) if n != API_KEY_COOKIE)
            if not kept:
                continue
            value = kept.encode("latin-1")
        headers.append((name, value))
    fields = scope.get("query_string", b"").split(b"&")  # the others kept byte for byte
    query_string = b"&".join(f for f in fields if f and _query_name(f) != API_KEY_QUERY)
    return {**scope, "headers": headers, "query_string": query_string}


def _query_name(field: bytes) -> str:
    return unquote_plus(field.partition(b"=")[0].decode("latin-1"))


async def _refuse(scope: Scope, send: Message) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # before accepting: the handshake gets 403
        return
    body = b'{"detail":"this catalog needs its API key (TILED_API_KEY of the ingester serving it)"}'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Apikey"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
