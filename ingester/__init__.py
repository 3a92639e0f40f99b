"""bluesky-ingester: write Bluesky run documents from JSON Lines files into Tiled.

The pipeline, one module a stage:
discover -> read -> validate -> normalize -> resolve -> write -> record.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
