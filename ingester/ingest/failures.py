"""Whose fault a failed write is: the run's content (`refused`) or the target's (`failed`).

`failed` means Tiled, the network or the disk failed and a retry may succeed; anything a retry cannot
fix (a shape, a column name, a dtype Tiled will not store) is the content's, and the run is refused.
The writer raises `WriteFailed` with the original exception as its cause (and has removed what it
wrote); `is_target_failure` looks at that exception and at what caused it. Nothing here writes.
"""

from __future__ import annotations

__all__ = ["is_target_failure", "CONTENT_ERRORS"]

# Raised by pyarrow, numpy, zarr or Tiled's own checks about the values they are given: the same
# values give the same error next time.
CONTENT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    ArithmeticError,
)

# HTTP statuses that say the request itself was wrong (a retry sends the same request), except those
# about who we are or how fast we ask, which a fixed configuration or a pause can change.
_NOT_CONTENT = {401, 403, 404, 407, 408, 409, 423, 425, 429}


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def is_target_failure(error: BaseException) -> bool:
    """True when `error` (or what caused it) says the target, the network or the disk failed; False
    when it is about the run's content. An error of neither kind counts as the target's."""
    import httpx
    import pyarrow

    chain = _chain(error)
    for link in chain:
        if isinstance(link, httpx.HTTPStatusError):
            status = link.response.status_code
            return status >= 500 or status in _NOT_CONTENT
        if isinstance(link, (httpx.TransportError, OSError, TimeoutError, MemoryError)):
            return True
        if type(link).__module__.startswith(("sqlalchemy", "sqlite3", "duckdb", "asyncpg", "psycopg")):
            return True  # the catalog's database: locked, full, gone
    return not any(isinstance(link, (*CONTENT_ERRORS, pyarrow.ArrowException)) for link in chain)
