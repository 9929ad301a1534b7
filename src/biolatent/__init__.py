"""biolatent: learning without labels for biomedical data."""

__version__ = "0.1.0"
