"""The gate of `watch --serve`: the writer's key passes, every other request reaches Tiled without credentials.

The app behind the gate here only records the requests it is given (what Tiled would see); the gate in front
of the real Tiled app is exercised end to end in tests/watch/test_watch_serve.py.
"""

from __future__ import annotations

import asyncio

from ingester.target.gate import ClientGate

WRITER, CLIENT = "writerkey0", "clientkey0"


class Recorder:
    """An ASGI app answering 200 and keeping each scope it received."""

    def __init__(self):
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})


def call(gate: ClientGate, path: str = "/api/v1/metadata/x", query: bytes = b"", headers=()) -> int:
    """Send one GET through `gate`; the status it answered."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": list(headers)}
    asyncio.run(gate(scope, receive, send))
    return sent[0]["status"]


def test_the_writer_passes_with_its_credentials():
    app = Recorder()
    headers = [(b"authorization", f"Apikey {WRITER}".encode())]
    assert call(ClientGate(app, WRITER, CLIENT), query=b"a=1", headers=headers) == 200
    assert app.scopes[-1]["headers"] == headers


def test_a_reader_reaches_tiled_anonymously_with_everything_else_kept():
    app = Recorder()
    headers = [
        (b"authorization", f"Apikey {CLIENT}".encode()),
        (b"cookie", f"tiled_csrf=abc; tiled_api_key={CLIENT}".encode()),
        (b"accept", b"application/json"),
    ]
    query = b"fields=a%2Fb&api_key=" + CLIENT.encode() + b"&filter[x]=y+z"
    assert call(ClientGate(app, WRITER, CLIENT), query=query, headers=headers) == 200
    seen = app.scopes[-1]
    assert seen["headers"] == [(b"cookie", b"tiled_csrf=abc"), (b"accept", b"application/json")]
    assert seen["query_string"] == b"fields=a%2Fb&filter[x]=y+z"


def test_without_a_client_key_anyone_reads_and_nobody_brings_a_key_in():
    app = Recorder()
    gate = ClientGate(app, WRITER)
    assert call(gate) == 200
    assert call(gate, headers=[(b"authorization", b"Apikey guessed0")]) == 200
    assert app.scopes[-1]["headers"] == []


def test_with_a_client_key_a_request_without_it_is_refused_but_the_server_description_is_open():
    app = Recorder()
    gate = ClientGate(app, WRITER, CLIENT)
    assert call(gate) == 401
    assert call(gate, headers=[(b"authorization", b"Apikey wrong0")]) == 401
    assert call(gate, query=b"api_key=wrong0") == 401
    assert call(gate, headers=[(b"cookie", b"tiled_api_key=wrong0")]) == 401
    assert app.scopes == []
    assert call(gate, path="/api/v1/") == 200
    assert call(gate, headers=[(b"authorization", f"apikey {CLIENT}".encode())]) == 200


def test_lifespan_passes_through():
    app = Recorder()

    async def nothing():
        return {}

    asyncio.run(ClientGate(app, WRITER, CLIENT)({"type": "lifespan"}, nothing, nothing))
    assert app.scopes == [{"type": "lifespan"}]
