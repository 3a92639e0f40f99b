"""Exporting runs from a target into a databroker-pack folder (`ingester export`).

`documents` rebuilds a run's documents from what Tiled holds, `pack` is the folder and its files,
`exporter` chooses the runs and writes each one whole. It reads a target, never run files or the
ledger: a pack is what another machine's `ingest-dir` reads.
"""
