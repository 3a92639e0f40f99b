"""Telling a target that is gone from a request it refused: what `ingest-dir` stops for.

`target_down(err)` says, for an exception raised while writing a run, whether it means the target
as a whole cannot be written to now — the server does not answer (connection refused, timeouts,
a gateway error), or the embedded catalog's storage is broken (DuckDB invalidated its database
after a fatal error, the disk is full) — and if so, why, in one line. Any other exception is about
the request (or the run) itself. Only the exception chain is looked at; nothing is retried here.
"""

from __future__ import annotations

import errno

__all__ = ["target_down"]

_GATEWAY_ERRORS = {502, 503, 504}
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def target_down(err: BaseException) -> str | None:
    """Why the target cannot be written to now, if `err` (or what caused it) says so; else None."""
    import httpx

    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, httpx.TransportError):
            return f"no answer from the server ({type(cause).__name__}: {_first_line(cause)})"
        if isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code in _GATEWAY_ERRORS:
            return f"the server answered {cause.response.status_code} {cause.response.reason_phrase}"
        if isinstance(cause, OSError) and cause.errno in _DISK_ERRNOS:
            return f"the catalog's disk failed: {cause.strerror}"
        if type(cause).__name__ == "FatalException" or "database has been invalidated" in str(cause):
            return f"the catalog's table storage stopped after a fatal error: {_first_line(cause)}"
        cause = cause.__cause__ or cause.__context__
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
