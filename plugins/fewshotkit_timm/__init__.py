"""Built-in plugin (being written)."""

__version__ = "0.1.0"
