"""Options shared by the commands, and building the settings from them (at the edge, once)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "PathsArg",
    "DataRootOpt",
    "RootMapOpt",
    "ServerPathOpt",
    "CatalogOpt",
    "TiledUriOpt",
    "SourceTiledUriOpt",
    "ConfigOpt",
    "LedgerOpt",
    "JobsOpt",
    "DryRunOpt",
    "IncompleteOpt",
    "ReplaceOpt",
    "ReportOpt",
    "LeaseOpt",
    "ProcessesOpt",
    "ParallelOpt",
    "OnMissingFileOpt",
    "LeftoverAfterOpt",
    "PollOpt",
    "PollIntervalOpt",
    "SettleOpt",
    "RescanIntervalOpt",
    "IncompleteAfterOpt",
    "RetryAfterOpt",
    "LogJsonOpt",
    "ServeOpt",
    "PortOpt",
    "HostOpt",
    "MetricsPortOpt",
    "MetricsHostOpt",
    "build_settings",
]

PathsArg = Annotated[list[Path], typer.Argument(help="Run files or directories (searched recursively).")]

DataRootOpt = Annotated[
    list[Path] | None,
    typer.Option("--data-root", help="Where relative external paths are looked up (repeatable, in order)."),
]
RootMapOpt = Annotated[
    list[str] | None, typer.Option("--root-map", help="OLD=NEW: external paths under OLD are found under NEW.")
]
ServerPathOpt = Annotated[
    list[str] | None, typer.Option("--server-path", help="LOCAL=SERVER: register files as the Tiled server sees them.")
]
CatalogOpt = Annotated[
    Path | None, typer.Option("--catalog", help="Embedded catalog folder [default: ./ingester-catalog].")
]
TiledUriOpt = Annotated[
    str | None, typer.Option("--tiled-uri", help="Write to this Tiled server (API key from TILED_API_KEY).")
]
SourceTiledUriOpt = Annotated[
    str | None, typer.Option("--tiled-uri", help="Read the runs from this Tiled server (API key from TILED_API_KEY).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file [default: ./ingester.toml].")]
LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="Ledger database URL (sqlite:///..., postgresql://...) [default: in the catalog]."),
]
JobsOpt = Annotated[int | None, typer.Option("--jobs", "-j", help="Files processed at once [default: cores].")]

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate and resolve everything; write nothing.")]
IncompleteOpt = Annotated[
    bool | None, typer.Option("--include-incomplete", help="Also ingest runs without a stop (marked as such).")
]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Replace a run already in Tiled with different content.")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write a JSON report, one entry per file.")]
LeaseOpt = Annotated[
    float | None,
    typer.Option(
        "--lease",
        min=0.1,
        help="Seconds a claim lasts unless renewed; a dead worker's claims expire after it [default: 60].",
    ),
]
ProcessesOpt = Annotated[
    int | None,
    typer.Option(
        "--processes", min=0, help="Writer processes into the embedded catalog [default: 0, one a core for many files]."
    ),
]
ParallelOpt = Annotated[
    bool | None,
    typer.Option("--parallel-writes/--serial-writes", help="Write runs concurrently (only for Tiled on PostgreSQL)."),
]


class OnMissingFile(StrEnum):
    refuse = "refuse"
    skip = "skip"


OnMissingFileOpt = Annotated[
    OnMissingFile | None,
    typer.Option(
        "--on-missing-file",
        help="An external file that is not there: refuse the run, or skip: ingest it without that key "
        "[default: refuse].",
    ),
]
LeftoverAfterOpt = Annotated[
    float | None,
    typer.Option(
        "--leftover-after",
        min=0,
        help="A run in Tiled without stop is replaced only once unchanged for this many seconds [default: 300].",
    ),
]

# `watch`: how the spool is followed.
Seconds = float
PollOpt = Annotated[
    bool | None,
    typer.Option(
        "--poll/--no-poll", help="Force the polling observer (NFS...) or inotify [default: from the mount type]."
    ),
]
PollIntervalOpt = Annotated[Seconds, typer.Option("--poll-interval", help="Seconds between polls.")]
SettleOpt = Annotated[Seconds, typer.Option("--settle", help="Seconds a finished file must stay unchanged.")]
RescanIntervalOpt = Annotated[
    Seconds, typer.Option("--rescan-interval", help="Seconds between full rescans (the safety net).")
]
IncompleteAfterOpt = Annotated[
    Seconds, typer.Option("--incomplete-after", help="Report a run without stop after this many seconds.")
]
RetryAfterOpt = Annotated[
    Seconds, typer.Option("--retry-after", help="First retry of a failed file (doubling, up to an hour).")
]
LogJsonOpt = Annotated[bool, typer.Option("--log-json", help="Log one JSON object a line.")]

# Serving the embedded catalog (`serve`, `watch --serve`).
ServeOpt = Annotated[
    bool,
    typer.Option("--serve", help="Also serve the embedded catalog with Tiled (read-only for clients) while watching."),
]
PortOpt = Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port to serve on.")]
HostOpt = Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus /metrics and /healthz on this port."),
]
MetricsHostOpt = Annotated[str, typer.Option("--metrics-host", help="Address /metrics binds (loopback by default).")]


def build_settings(config: Path | None, **flags):
    """The settings from flags, environment and config file, or exit 2 with one line saying what is
    wrong (the values given are not repeated: one may be a secret)."""
    from pydantic import ValidationError

    from ingester.config import load_settings, parse_mapping
    from ingester.logs import register_secret, scrub

    try:
        if flags.get("on_missing_file") is not None:
            flags["on_missing_file"] = str(flags["on_missing_file"])
        for name, flag in (("root_map", "--root-map"), ("server_paths", "--server-path")):
            if flags.get(name):
                flags[name] = [parse_mapping(v, flag) for v in flags[name]]
        settings = load_settings(config, **flags)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
        )
        typer.echo(f"error: {scrub(problems)}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {scrub(str(err))}", err=True)
        raise typer.Exit(2) from None
    register_secret(settings.api_key.get_secret_value() if settings.api_key else None)
    return settings
