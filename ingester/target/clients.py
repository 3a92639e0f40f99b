"""The tiled clients the writer writes through: tiled's own, never those picked by our specs.

A node whose spec is BlueskyRun or BlueskyEventStream gets bluesky-tiled-plugins' client when it is
returned, through an entry point: importing those costs about 250 MB and a second, and writing needs
none of what they add. `plain_variation(node)` makes a node hand out tiled's own `Container` /
`CompositeClient` for its children instead, and `AppendOnlyTable` for tables. Nothing here writes a
run or opens a target.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow

__all__ = ["AppendOnlyTable", "plain_variation"]


class _PlainClients(Mapping):
    """A client's structure clients without those picked by our specs (BlueskyRun, BlueskyEventStream).

    Those are bluesky-tiled-plugins' clients, loaded through an entry point the first time a node
    with the spec is returned: importing them costs about 250 MB and a second, and writing needs
    none of what they add. The nodes we create are then tiled's own Container / CompositeClient,
    and our `AppendOnlyTable` for tables.
    """

    HIDDEN = frozenset({"BlueskyRun", "BlueskyEventStream"})

    def __init__(self, clients: Mapping):
        self.clients = clients

    def __getitem__(self, key: str) -> Any:
        if key in self.HIDDEN:
            raise KeyError(key)
        if key == "table":  # tables are only appended to: a client that does not import pandas and dask
            return AppendOnlyTable
        return self.clients[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key in self.clients if key not in self.HIDDEN)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def plain_variation(node: Any) -> Any:
    """`node` (a tiled client) returning tiled's own clients for its children, see `_PlainClients`."""
    clients = node.structure_clients
    if isinstance(clients, _PlainClients):
        return node
    return node.new_variation(structure_clients=_PlainClients(clients))


def _base_client() -> type:
    from tiled.client.base import BaseClient

    return BaseClient


class AppendOnlyTable(_base_client()):  # type: ignore[misc]
    """The client of a table node the writer creates: it appends partitions, and nothing else.

    tiled's own `DataFrameClient` would do, but importing its module imports dask.dataframe, pandas
    and xarray (about 150 MB and half a second) for features the writer never uses. The request is
    DataFrameClient.append_partition's: the table as an Arrow IPC file, PATCHed to the partition
    link. Unlike it, a failed request is not retried: the writer removes the whole run instead.
    """

    def append_partition(self, partition: int, table: pyarrow.Table) -> None:
        from tiled.client.utils import handle_error

        sink = pyarrow.BufferOutputStream()
        with pyarrow.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        url = self.item["links"]["partition"].format(index=partition)
        mimetype = "application/vnd.apache.arrow.file"
        handle_error(
            self.context.http_client.patch(
                url, content=sink.getvalue().to_pybytes(), headers={"Content-Type": mimetype}
            )
        )
