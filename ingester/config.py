"""Configuration: one pydantic settings object, built at the edge and passed in.

What the settings say about places (the path rules for external files, the folders Tiled may read,
the ledger's database and the key its records go under) is derived here too, once, at the edge.

Sources, highest first: command-line flags (passed as keyword arguments by the CLI), `INGESTER_*`
environment variables, a TOML file (`--config FILE`, else `ingester.toml` in the working
directory), the defaults below. The Tiled API key comes from `TILED_API_KEY` (or `api_key` in the
config file), never from the command line, and is kept as a secret: it is not printed, logged or
repeated in an error. No other module reads the environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "DEFAULT_CATALOG", "PathRules", "Settings", "load_settings", "parse_mapping", "path_rules", "readable_roots",
    "ledger_url", "target_key", "redact_uri",
]  # fmt: skip

DEFAULT_CONFIG_FILE = Path("ingester.toml")
DEFAULT_CATALOG = Path("ingester-catalog")


def parse_mapping(value: str, flag: str) -> tuple[str, str]:
    """`OLD=NEW` -> ("OLD", "NEW"); both sides must be non-empty."""
    old, sep, new = value.partition("=")
    if not sep or not old or not new:
        raise ValueError(f"{flag} expects OLD=NEW, got {value!r}")
    return old, new


class Settings(BaseSettings):
    """Everything the flags set; see the README's Configuration section."""

    model_config = SettingsConfigDict(env_prefix="INGESTER_", extra="forbid", populate_by_name=True)

    catalog: Path = Field(DEFAULT_CATALOG, description="Embedded catalog folder (the default target).")
    tiled_uri: str | None = Field(None, description="Write to this Tiled server instead of the embedded catalog.")
    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("api_key", "TILED_API_KEY", "INGESTER_API_KEY"), repr=False
    )
    data_roots: list[Path] = Field(default_factory=list, description="Where relative external paths are looked up.")
    root_map: list[tuple[str, str]] = Field(default_factory=list, description="OLD=NEW prefixes of moved data.")
    server_paths: list[tuple[str, str]] = Field(
        default_factory=list, description="LOCAL=SERVER prefixes when Tiled mounts the data elsewhere."
    )
    on_missing_file: Literal["refuse", "skip"] = Field(
        "refuse",
        description="A run naming an external file that is not there: refuse it, or ingest it without that key.",
    )
    leftover_after: float = Field(
        300.0, ge=0, description="Seconds a run in Tiled without stop must have been unchanged before it is replaced."
    )
    ledger: str | None = Field(None, description="SQLAlchemy URL of the ledger; default: inside the catalog.")
    jobs: int = Field(0, ge=0, description="Concurrent runs; 0 means the number of cores.")
    processes: int = Field(
        0, ge=0, description="Writer processes into the embedded catalog; 0: one a core when there are many files."
    )
    include_incomplete: bool = False
    parallel_writes: bool = Field(
        False, description="Let jobs write at once (a Tiled on PostgreSQL); an SQLite-backed catalog takes one writer."
    )
    lease: float = Field(
        60.0, gt=0, description="Seconds a claim on a file or run lasts unless renewed (a dead worker's expire)."
    )

    @field_validator("tiled_uri")
    @classmethod
    def _no_secret_in_uri(cls, value: str | None) -> str | None:
        """The API key comes from TILED_API_KEY, never from a URI given on the command line or in a file."""
        if value is None:
            return value
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(value)
        keys = {key.lower() for key in parse_qs(parts.query, keep_blank_values=True)}
        if keys & {"api_key", "apikey", "token", "access_token"} or parts.password:
            raise ValueError(
                "the Tiled URI must not carry a key or password: give the API key in the TILED_API_KEY "
                "environment variable (or api_key in the config file)"
            )
        return value

    @field_validator("root_map", "server_paths", mode="before")
    @classmethod
    def _mappings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return list(value.items())
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if isinstance(value, list):
            return [parse_mapping(v, "mapping") if isinstance(v, str) else v for v in value]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, _TiledApiKey(settings_cls)]
        if settings_cls.model_config.get("toml_file") is not None:
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


class _TiledApiKey(PydanticBaseSettingsSource):
    """`TILED_API_KEY`, the variable Tiled's own tools read, without the INGESTER_ prefix."""

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the base class
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        key = os.environ.get("TILED_API_KEY")
        return {"api_key": key} if key else {}


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build the settings from flags (None = not given), environment and config file."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    toml_file = config_file or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)
    given = {k: v for k, v in flags.items() if v is not None and v != [] and v != ()}
    config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml_file})
    settings_cls = type("Settings", (Settings,), {"model_config": config})
    return settings_cls(**given)


# --- what the settings say about places ------------------------------------------------------


@dataclass(frozen=True)
class PathRules:
    """Where external files may be and how their paths are rewritten.

    data_roots: directories relative locations are resolved against, in order; empty means the
        directory of the run file. Relative roots are taken against the working directory.
    root_map: (OLD, NEW) absolute path prefixes; a location under OLD is read under NEW.
    server_paths: (LOCAL, SERVER) path prefixes; the Tiled server sees LOCAL/... as SERVER/...
    skip_missing: a key whose file is missing (or whose resource names no file) is left out of the
        run instead of refusing it (`on_missing_file = "skip"`).
    pack_root_map: for a run file of a databroker-pack folder, the pack's own root map: (ROOT, NEW),
        ROOT an absolute root or the id written in its place (the first component of a relative
        location), NEW an absolute folder; applied before `root_map`.
    checksums: for a run file of a pack with `SHA256SUMS`, (absolute path, sha256 hex) of its files:
        each external file of a run listed there is verified before anything of the run is written.
    """

    data_roots: tuple[Path, ...] = ()
    root_map: tuple[tuple[str, str], ...] = ()
    server_paths: tuple[tuple[str, str], ...] = ()
    skip_missing: bool = False  # ingest a run without the external keys whose files are missing
    pack_root_map: tuple[tuple[str, str], ...] = ()
    checksums: tuple[tuple[str, str], ...] = ()


def path_rules(settings: Settings) -> PathRules:
    return PathRules(
        data_roots=tuple(Path(p).absolute() for p in settings.data_roots),
        root_map=tuple((old, str(Path(new).absolute())) for old, new in settings.root_map),
        server_paths=tuple(settings.server_paths),
        skip_missing=settings.on_missing_file == "skip",
    )


def readable_roots(settings: Settings, paths: Iterable[Path] = ()) -> list[Path]:
    """Folders Tiled may read registered files from: data roots, root-map targets, or the run files' folders."""
    roots = [Path(p).absolute() for p in settings.data_roots]
    roots += [Path(new).absolute() for _, new in settings.root_map]
    if not settings.data_roots:
        roots += [(p if p.is_dir() else p.parent).absolute() for p in paths]
    return list(dict.fromkeys(roots))


def ledger_url(settings: Settings) -> str:
    """The ledger's database: as configured, else SQLite inside the catalog folder (beside it for a server)."""
    if settings.ledger:
        return settings.ledger
    if settings.tiled_uri:
        return f"sqlite:///{Path('ingester-ledger.db').absolute()}"
    return f"sqlite:///{settings.catalog.absolute() / 'ledger.db'}"


def target_key(settings: Settings) -> str:
    """Whose records the ledger keeps: the catalog folder, or the server's URI without secrets."""
    return redact_uri(settings.tiled_uri) if settings.tiled_uri else str(settings.catalog.absolute())


def redact_uri(uri: str) -> str:
    """A URI without what may be secret in it (an api_key query, a password in the netloc)."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
