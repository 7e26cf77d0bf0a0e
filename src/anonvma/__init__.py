"""anonvma: Linux's named anonymous memory, modelled, measured and checked against the real kernel."""

__version__ = "0.1.0"
