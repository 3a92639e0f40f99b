"""A run of the embedded catalog read through Tiled's catalog adapter: the same `RunTree` that
`ingester.export.documents.read_run` reads over HTTP, without the HTTP.

In the embedded target every read was a request through the in-process app (routing, dependency
injection, serialization both ways): a small run is six of them at ~40 ms each, and its export took
250 ms; read here it takes 47 ms, most of it the catalog's own ORM queries and the DuckDB reads of
its two tables (cProfile, 100 small runs). `read_run_in_catalog` does what the server's routes do for
those requests, on the app's own event loop (the portal `EmbeddedNode` writes through, so reads see every write): the run's
node, its streams, each stream's nodes with their data sources (an external node's with its
assets), and a node's data when the documents read it, a table as the server reads it for an Arrow
response (the storage adapter's pandas frame, as Arrow). Nothing here writes, and no access policy
is applied: the embedded app has none.
"""

from __future__ import annotations

import copy
from typing import Any

from ingester.export.documents import Part, RunTree, enum_name
from ingester.target.embedded import EmbeddedNode

__all__ = ["read_run_in_catalog"]


def read_run_in_catalog(catalog: EmbeddedNode, uid: str) -> RunTree:
    """The run `uid` of the embedded catalog whose root is `catalog`: its nodes in one call on the app's
    loop, each node's data in one more when the documents read it."""
    return catalog.portal.call(_read_run, catalog.portal, catalog.adapter, uid)


async def _read_run(portal: Any, root: Any, uid: str) -> RunTree:
    run = await root.lookup_adapter([uid])
    streams = []
    for name, stream in await run.items_range():
        parts = {key: await _part(portal, node) for key, node in await stream.items_range()}
        streams.append((name, copy.deepcopy(stream.metadata()), parts))
    return RunTree(copy.deepcopy(run.metadata()), streams)


async def _part(portal: Any, node: Any) -> Part:
    family = enum_name(node.structure_family)
    (source,) = await node.data_sources()  # as the node was looked up: without assets, no query
    if enum_name(source.management) == "external":
        (source,) = await node.data_sources(include_assets=True)  # the files, for the documents and the pack
    shape = tuple(getattr(node.structure(), "shape", ()))
    return Part(family, source, shape, copy.deepcopy(node.metadata()), lambda: portal.call(_read, node, family))


async def _read(node: Any, family: str) -> Any:
    """A node's data as the server reads it for a response; a table as Arrow. The SQL storage's read
    is synchronous (DuckDB, a few ms): run here, on the app's loop, which is ours alone, rather than
    handed to a worker thread and back as the server's route does."""
    if family != "table":
        return await node.read()
    import pyarrow

    storage = await node.get_adapter()
    return pyarrow.Table.from_pandas(storage.read(), preserve_index=False)
