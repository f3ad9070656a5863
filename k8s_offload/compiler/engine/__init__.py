"""The incremental engine (core.py) and the compilation written as its units (docs/engine.md)."""
