"""The single source of the package version; stamped into every artifact."""

__version__ = "0.1.0"
