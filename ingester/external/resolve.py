"""Resolve every external location of a normalized run to a checked local and server URI.

For each `ExternalSource`, resolve takes the location exactly as the run file wrote it and:

- resolves a relative location (no scheme, `file:` with a relative path, a legacy Resource with an
  empty or relative root) against the data roots in order: the first root under which every
  file the source references exists wins. With no data root configured, the directory of the run
  file is the data root;
- rewrites a location by the root map of the databroker-pack it came from, if any (a Resource root
  as the pack's documents hold it: an absolute root, or the 32-hex id databroker-pack wrote in its
  place), then an absolute location by the root map (OLD=NEW, a component-wise path prefix; the longest
  matching OLD wins), as databroker's root_map did at read time;
- refuses, with an `IngestError` naming the source document and the path, a file that does not
  exist or whose real path (symlinks and `..` followed) lies outside every data root and root-map
  target;
- maps the local path to the path the Tiled server sees (server_paths LOCAL=SERVER, component-wise).

A source that names no file at all (a Resource whose handler computes its data: spec `newton`, root
`/`, no resource_path) is refused saying so. With `skip_missing` (`--on-missing-file skip`), a data
key with a missing file, or naming no file, is left out of the run instead: every source of that
(stream, key) is dropped and `missing` lists "stream/key: path or reason".

The files a source references are enumerated by bluesky-tiled-plugins' consolidators, grouped per
(stream, data key) as TiledWriter groups them, so multi-file sequences (TIFF, NPY, ...) are checked
file by file without re-implementing their templates.

Resolve returns a new run and never modifies the one it is given; a source's `doc` (its `uri` as
written) is left as normalize made it, the resolved locations are `local_uri` and `server_uri`.
It never writes to Tiled and never reads file contents.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Iterable
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from ingester.config import PathRules
from ingester.external.consolidate import consolidate, source_groups, source_problem
from ingester.runs import ExternalSource, NormalizedRun

__all__ = ["PathRules", "resolve_external_paths"]

# Characters tiled 0.2.20 cannot read back from the path of a file URI (it does not percent-decode).
_UNADDRESSABLE = ("#", "?")
# A URI scheme; two characters at least, so that a Windows drive letter is not one.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


class _Refusal(Exception):
    """A reason to refuse one source; turned into an `IngestError` with the source's place."""


class _Missing(_Refusal):
    """The source's file is not there, or it names no file: with `skip_missing` its key is left out."""

    def __init__(self, reason: str, what: str):
        super().__init__(reason)
        self.what = what  # the missing path, or the reason it names no file


def resolve_external_paths(run: NormalizedRun, rules: PathRules) -> NormalizedRun:
    """Return `run` with `local_uri` and `server_uri` set on every external source.

    Raises `IngestError` for the first source that cannot be resolved, before anything is written;
    with `rules.skip_missing`, a key whose file is missing is left out instead (see the docstring).
    """
    roots = tuple(os.path.abspath(root) for root in (rules.data_roots or (run.path.parent,)))
    allowed = [os.path.realpath(root) for root in roots]
    allowed += [os.path.realpath(new) for _, new in (*rules.root_map, *rules.pack_root_map)]
    missing: dict[tuple[str | None, str], str] = {}
    for source in run.external.values():
        if (reason := _names_no_file(source)) is not None:
            if not rules.skip_missing:
                raise source_problem(run, source, reason)
            missing.setdefault((source.stream, source.doc.get("data_key", "")), reason)
    run = _without(run, missing)
    referenced = _referenced_files(run)
    external: dict[str, ExternalSource] = {}
    for uid, source in run.external.items():
        try:
            local, files = _resolve_source(source, referenced[uid], roots, allowed, rules)
        except _Missing as refusal:
            if not rules.skip_missing:
                raise source_problem(run, source, str(refusal)) from None
            missing.setdefault((source.stream, source.doc.get("data_key", "")), refusal.what)
            continue
        except _Refusal as refusal:
            raise source_problem(run, source, str(refusal)) from None
        local_uri = _file_uri(local)
        server_uri = _file_uri(_keep_slash(local, _rewrite(local, rules.server_paths)))
        external[uid] = dataclasses.replace(
            source,
            stream_datums=list(source.stream_datums),
            local_uri=local_uri,
            server_uri=server_uri,
            local_files=files,
        )
    run = _without(dataclasses.replace(run, external=external), missing)
    return dataclasses.replace(run, missing=[*run.missing, *(f"{s}/{k}: {what}" for (s, k), what in missing.items())])


def _names_no_file(source: ExternalSource) -> str | None:
    """Why the source names no file (a handler that computes its data), or None when it names one."""
    location = source.original_location
    path = location if not _SCHEME.match(location) else urlparse(location).path
    if path.strip("/"):
        return None
    if source.source_name == "resource":
        spec = source.spec or (source.doc.get("parameters") or {}).get("spec", "")
        return f"resource spec {spec!r} names no file (root {location!r})"
    return f"{source.source_name} names no file (uri {location!r})"


def _without(run: NormalizedRun, keys: dict[tuple[str | None, str], str]) -> NormalizedRun:
    """`run` without the sources of the (stream, data key)s in `keys`."""
    if not keys:
        return run
    kept = {
        uid: source
        for uid, source in run.external.items()
        if (source.stream, source.doc.get("data_key", "")) not in keys
    }
    return dataclasses.replace(run, external=kept)


def _referenced_files(run: NormalizedRun) -> dict[str, list[str]]:
    """For each source uid, the locations (unresolved, as written) of the files it references.

    Sources of one (stream, data key) share a consolidator, as in TiledWriter, so a later
    source's file indices continue from the earlier ones. A source no StreamDatum references
    gets no node and references no file.
    """
    files: dict[str, list[str]] = {uid: [] for uid in run.external}
    for (stream, _), sources in source_groups(run).items():
        descriptor = run.streams[stream].descriptor
        consolidator, before = consolidate(
            run, sources, descriptor, lambda source: source.original_location, "cannot enumerate the external files"
        )
        assets = consolidator.assets
        for source, start, stop in zip(sources, before, [*before[1:], len(assets)], strict=True):
            files[source.doc["uid"]] = [asset.data_uri for asset in assets[start:stop]]
    return files


def _resolve_source(
    source: ExternalSource,
    files: list[str],
    roots: tuple[str, ...],
    allowed: list[str],
    rules: PathRules,
) -> tuple[str, list[str]]:
    """The local path of the source's location and of the files it references, once they are checked."""
    locations = [source.original_location, *files]
    paths = [_path_of(location) for location in locations]
    paths = [_keep_slash(path, _rewrite(path, rules.pack_root_map)) for path in paths]
    root_map = rules.root_map
    trials: Iterable[str | None] = roots if any(not p.startswith("/") for p in paths) else (None,)
    first_fault: str | None = None
    first_missing: str | None = None
    for root in trials:
        placed = [_place(path, root, root_map) for path in paths]
        escaping = [p for p in placed if not _inside(os.path.realpath(p), allowed)]
        faults = [(p, fault) for p in placed[1:] if (fault := _unreadable(p)) is not None]
        if not escaping and not faults:
            return _addressable(placed[0], placed[1:]), placed[1:]
        if first_fault is None:
            if escaping:
                real = os.path.realpath(escaping[0])
                via = f" (a symlink to {real})" if real != escaping[0] else ""
                first_fault = f"external path escapes the data roots: {escaping[0]}{via}"
            else:
                path, fault = faults[0]
                first_fault = f"external file {fault}: {path}"
                if root is not None and len(roots) > 1 and fault == "does not exist":
                    first_fault += f" (nor under the other data roots {', '.join(roots[1:])})"
                first_missing = path
    if first_missing is not None:
        raise _Missing(first_fault, first_missing)
    raise _Refusal(first_fault)


def _unreadable(path: str) -> str | None:
    """Why the file at `path` cannot be read (None when it can): gone, not a file, no permission."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def _addressable(location: str, files: list[str]) -> str:
    """`location`, once sure Tiled can read every file back from a file URI: tiled 0.2.20 takes a
    file URI's path as it is written (it does not percent-decode it), so a path holding `#` or `?`
    can be written neither encoded nor as it is. Such a file is refused, saying so."""
    for path in [location, *files]:
        odd = sorted({c for c in _UNADDRESSABLE if c in path})
        if odd:
            chars = " and ".join(repr(c) for c in odd)
            raise _Refusal(f"external file name holds {chars}, which Tiled cannot read back from a file URI: {path}")
    return location


def _path_of(location: str) -> str:
    """The path a location names: the path of a `file:` URI (percent-decoded; a `?` or `#` written
    as it is belongs to the file's name, as detectors write them), or the location itself."""
    if not _SCHEME.match(location):
        return location
    parsed = urlparse(location)
    if parsed.scheme != "file":
        raise _Refusal(f"unsupported URI scheme {parsed.scheme!r}: {location}")
    if parsed.netloc not in ("", "localhost"):
        raise _Refusal(f"external URI names another host ({parsed.netloc}): {location}")
    rest = location.split(":", 1)[1]
    if rest.startswith("//"):  # file://host/path: everything after the host is the path
        _, slash, after = rest[2:].partition("/")
        rest = slash + after
    return unquote(rest)


def _place(path: str, root: str | None, root_map: tuple[tuple[str, str], ...]) -> str:
    """An absolute, normalized local path: relative ones under `root`, absolute ones root-mapped."""
    if path.startswith("/"):
        placed = _rewrite(path, root_map)
    else:
        placed = os.path.join(root or "", path)
    return _keep_slash(path, os.path.normpath(placed))


def _rewrite(path: str, prefixes: tuple[tuple[str, str], ...]) -> str:
    """`path` with the longest matching OLD prefix (whole components) replaced by NEW."""
    parts = PurePosixPath(path).parts
    best: tuple[int, str] | None = None
    for old, new in prefixes:
        old_parts = PurePosixPath(old).parts
        if parts[: len(old_parts)] == old_parts and (best is None or len(old_parts) > best[0]):
            best = (len(old_parts), new)
    if best is None:
        return path
    return str(PurePosixPath(best[1], *parts[best[0] :]))


def _keep_slash(original: str, path: str) -> str:
    """Re-attach a trailing `/` (a directory URI that templates append to) lost by normalizing."""
    return path + "/" if original.endswith("/") and not path.endswith("/") else path


def _inside(real_path: str, real_roots: list[str]) -> bool:
    path = PurePosixPath(real_path)
    return any(path.is_relative_to(root) for root in real_roots)


def _file_uri(path: str) -> str:
    # The form tiled.utils.ensure_uri gives an absolute path, read back by tiled.utils.path_from_uri.
    return f"file://localhost{path}"
