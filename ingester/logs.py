"""Logging: loguru for our messages, with the standard library's loggers (tiled, httpx, uvicorn)
routed into it at WARNING and above so that a run's output is ours, not theirs.

Tracebacks are logged without loguru's `diagnose` (variable values), which could show secrets and
whose repr() of a Tiled client would make requests. `setup_logging(json=False, level="INFO")` is called once, at the edge (the CLI). Human-readable lines
on stderr by default; `json=True` writes one JSON object a line. Never log an API key: the settings
hold it as a secret, and nothing here formats settings; every message (and exception text) goes
through `scrub`, which masks secrets in URLs and removes the registered API key, so that an error
quoting a URL or a header cannot show it either.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

from loguru import logger

__all__ = ["logger", "setup_logging", "scrub", "register_secret"]

# What may carry a secret inside a URL: an api_key (or token, password...) query value, and the
# password of a user:password@ netloc.
_SECRET_QUERY = re.compile(r"((?:api_key|apikey|token|access_token|password|secret)=)[^&#\s'\"]+", re.IGNORECASE)
_SECRET_USERINFO = re.compile(r"(://[^/@:\s'\"]*:)[^/@\s'\"]+@")
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """A value (an API key) that `scrub` removes from any text from now on."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """`text` without secrets: URL query keys and passwords masked, registered values removed."""
    text = _SECRET_QUERY.sub(r"\1***", text)
    text = _SECRET_USERINFO.sub(r"\1***@", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def _scrubbed(record: dict) -> None:
    record["message"] = scrub(record["message"])
    if record["exception"] is not None:
        value = record["exception"].value
        if value is not None and scrub(str(value)) != str(value):
            try:
                record["exception"] = record["exception"]._replace(value=type(value)(scrub(str(value))))
            except Exception:  # an exception type that cannot be rebuilt from a message: drop the text
                record["exception"] = record["exception"]._replace(value=RuntimeError(scrub(str(value))))


_HUMAN = "<green>{time:YYYY-MM-DD HH:mm:ss}</green> <level>{level: <7}</level> {message}"


def _stderr(message: str) -> None:
    """Write to whatever sys.stderr is now (a test runner may swap it), not what it was at import."""
    sys.stderr.write(message)


# Until setup_logging() runs (library use, tests), log to the current stderr, not a stale one.
logger.remove()
logger.add(_stderr, level="INFO", format=_HUMAN, colorize=False, diagnose=False)
logger.configure(patcher=_scrubbed)


class _ToLoguru(logging.Handler):
    """Send a standard-library log record to loguru, keeping its level and origin."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, "{}: {}", record.name, record.getMessage())


def setup_logging(*, json: bool = False, level: str = "INFO") -> None:
    logger.remove()
    if json:
        logger.add(_stderr, level=level, serialize=True, diagnose=False)
    else:
        logger.add(_stderr, level=level, format=_HUMAN, colorize=sys.stderr.isatty(), diagnose=False)
    logging.basicConfig(handlers=[_ToLoguru()], level=logging.WARNING, force=True)
    for noisy in ("tiled", "httpx", "uvicorn", "sqlalchemy", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # tiled's in-process client uses starlette's TestClient, which warns about its own transport.
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
