"""Helpers the tests share: builders of runs and run files, Tiled servers, the fixture corpus.

Plain functions and classes; the pytest fixtures built on them are in `tests/conftest.py`.
"""
