"""The embedded catalog's nodes, written through Tiled's catalog adapter rather than over HTTP.

In the embedded target the Tiled app runs in-process and every write was an HTTP request through
starlette's test transport: about 30 ms of request handling (routing, dependency injection, JSON
and msgpack both ways) around 5-15 ms of catalog work. A small run is eight such requests.
`EmbeddedNode` does, for the writes the writer makes most (containers, SQL tables and their
appended partitions, the final metadata update, deleting a failed run), what the matching route of
Tiled's server does with the request body, on the app's own event loop (its test client's portal),
so that they share the catalog's connection pool and see each other's nodes:

- create (POST /metadata): the body validated as `PostMetadataRequest` from the JSON the client
  would send, the spec validators of the app's default registry, no access policy, `create_node`;
- append (PATCH /table/partition): the table adapter's `append_partition`;
- update (PATCH /metadata, merge patch): merged metadata, specs validated, `replace_metadata`;
- delete (DELETE /metadata): the adapter's `delete`.

Everything else (arrays, ragged arrays, external files, reading nodes back) goes through the HTTP
client of the same node, looked up by path, so that Tiled's own checks (readable storage for
registered files, array chunking) stay the server's. The layout written is the same either way:
every test in tests/write/test_writer.py writes through both, and tests/write/test_differential.py compares
this path's trees with TiledWriter's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from ingester.target.clients import plain_variation

__all__ = ["EmbeddedNode", "EmbeddedTable", "is_collision"]

SQL_TABLE = "application/x-tiled-sql-table"


def is_collision(err: BaseException) -> bool:
    """Whether creating a node failed because its key is taken (HTTP 409, or the adapter's Collision)."""
    import httpx
    from tiled.catalog.adapter import Collision

    if isinstance(err, httpx.HTTPStatusError):
        return err.response.status_code == httpx.codes.CONFLICT
    return isinstance(err, Collision)


class EmbeddedNode:
    """A container of the embedded catalog: the part of tiled's `Container` client the writer uses."""

    def __init__(self, portal: Any, adapter: Any, client_root: Any, path: tuple[str, ...] = ()):
        self.portal = portal  # runs coroutines on the in-process app's event loop
        self.adapter = adapter  # tiled's CatalogContainerAdapter of this node
        self.client_root = client_root  # the HTTP client of the catalog root, for everything else
        self.path = path

    @property
    def base(self) -> EmbeddedNode:
        return self

    def create_container(
        self, key: str, *, metadata: dict | None = None, specs: Iterable = (), access_tags: Any = None
    ) -> EmbeddedNode:
        from tiled.structures.core import StructureFamily

        child = self.portal.call(self._create, key, StructureFamily.container, metadata, specs, [], access_tags)
        return EmbeddedNode(self.portal, child, self.client_root, (*self.path, key))

    def create_appendable_table(
        self, schema: Any, *, key: str, metadata: dict | None = None, specs: Iterable = (), access_tags: Any = None
    ) -> EmbeddedTable:
        from tiled.structures.core import StructureFamily
        from tiled.structures.data_source import DataSource
        from tiled.structures.table import TableStructure

        source = DataSource(
            structure=TableStructure.from_schema(schema, 1),
            structure_family=StructureFamily.table,
            mimetype=SQL_TABLE,
            parameters={},
        )
        child = self.portal.call(self._create, key, StructureFamily.table, metadata, specs, [source], access_tags)
        return EmbeddedTable(self.portal, child)

    def update_metadata(self, metadata: dict, *, drop_revision: bool = False) -> None:
        """Merge `metadata` into the node's (as tiled's client does). The adapter keeps the metadata the
        node was created with, so a second update would merge into that: the writer updates a node once."""
        self.portal.call(self._update, metadata, drop_revision)

    def delete(self, *, recursive: bool = False, external_only: bool = True) -> None:
        self.portal.call(self._delete, recursive, external_only)

    # Everything else is the HTTP client's, for the same node.
    def client(self, *, plain: bool = True) -> Any:
        """This node's HTTP client: with tiled's own clients for what it holds (`plain`, for writing:
        see ingester.target.clients), or the clients the catalog picks by spec, as `root` gives."""

        node = plain_variation(self.client_root) if plain else self.client_root
        for key in self.path:
            node = node[key]
        return node

    def __getitem__(self, key: str) -> Any:
        """A child, read back as the target's `root` would give it."""
        return self.client(plain=False)[key]

    def __contains__(self, key: object) -> bool:
        return key in self.client(plain=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self.client(plain=False))

    def write_array(self, *args: Any, **kwargs: Any) -> Any:
        return self.client().write_array(*args, **kwargs)

    def write_ragged(self, *args: Any, **kwargs: Any) -> Any:
        return self.client().write_ragged(*args, **kwargs)

    def new(self, *args: Any, **kwargs: Any) -> Any:
        return self.client().new(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<EmbeddedNode /{'/'.join(self.path)}>"

    # What the server's routes do, on the app's loop.
    async def _create(self, key, structure_family, metadata, specs, data_sources, access_tags) -> Any:
        from fastapi import HTTPException
        from tiled.access_control.protocols import normalize_access_tags
        from tiled.client.utils import normalize_specs
        from tiled.server.schemas import PostMetadataRequest
        from tiled.structures.core import StructureFamily
        from tiled.utils import safe_json_dump

        body = PostMetadataRequest.model_validate_json(
            safe_json_dump(
                {
                    "id": key,
                    "metadata": metadata or {},
                    "structure_family": structure_family,
                    "specs": normalize_specs(specs),
                    "data_sources": [asdict(source) for source in data_sources],
                    "access_tags": access_tags,
                }
            )
        )
        if body.data_sources and not getattr(self.adapter, "writable", False):
            raise HTTPException(status_code=405, detail=f"Data cannot be written at the path {self.path}")
        structure = None if body.structure_family == StructureFamily.container else body.data_sources[0].structure
        await _validate_specs(body.specs, body.metadata, None, body.structure_family, structure)
        return await self.adapter.create_node(
            metadata=body.metadata,
            structure_family=body.structure_family,
            key=key,
            specs=body.specs,
            data_sources=body.data_sources,
            access_tags=normalize_access_tags(),  # the embedded app has no access policy
        )

    async def _update(self, metadata: dict, drop_revision: bool) -> None:
        import orjson
        from json_merge_patch import merge
        from tiled.utils import safe_json_dump

        entry = self.adapter
        merged = merge(entry.metadata(), orjson.loads(safe_json_dump(metadata)))
        specs = list(entry.specs or [])
        await _validate_specs(specs, merged, entry, None, None)
        # The server's route passes the node's own tags back, which rewrites the same (here: no) tags;
        # None leaves them as they are without the two statements that rewrite them.
        await entry.replace_metadata(metadata=merged, specs=specs, access_tags=None, drop_revision=drop_revision)

    async def _delete(self, recursive: bool, external_only: bool) -> None:
        await self.adapter.delete(recursive=recursive, external_only=external_only)


class EmbeddedTable:
    """A table node of the embedded catalog: rows are appended to its partition, nothing else."""

    def __init__(self, portal: Any, adapter: Any):
        self.portal = portal
        self.adapter = adapter

    def append_partition(self, partition: int, table: Any) -> None:
        self.portal.call(self._append, partition, table)

    async def _append(self, partition: int, table: Any) -> None:
        import inspect

        storage = await self.adapter.get_adapter()
        written = storage.append_partition(partition, table)
        # Synchronous in tiled's SQL adapter: run here, on the app's loop, which is ours alone, rather
        # than handed to a worker thread and back (what the server's route does) for a write of ~1 ms.
        if inspect.isawaitable(written):
            await written


async def _validate_specs(specs: list, metadata: dict, entry: Any, structure_family: Any, structure: Any) -> None:
    """The server's spec validation with the default registry the embedded app is built with."""
    from tiled.validation_registration import default_validation_registry

    for spec in reversed(specs):
        if spec in default_validation_registry:
            await default_validation_registry(spec)(spec, metadata, entry, structure_family, structure)
