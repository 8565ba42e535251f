"""The package version, in a module of its own so that code below the `ppad_core` facade can read it."""

__version__ = "0.1.0"
