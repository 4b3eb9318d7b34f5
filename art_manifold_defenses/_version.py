"""The package version, in a module of its own so that any module can read it without importing the package
``__init__`` (which imports checkpoint, data, models and training: importing it from one of those closed a
cycle)."""

__version__ = "0.1.0"
