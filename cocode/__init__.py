"""cocode: run several coding agents on one issue at once."""
__version__ = "0.1.0"
