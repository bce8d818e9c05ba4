"""The error hierarchy of riskmon, documented in one place.

``RiskmonError`` is the root. Every error that reaches a user is one of these, with a message
that names the file, key or column at fault and what was expected.

- ``ConfigError``: a configuration file or environment override is missing, unreadable or invalid.
- ``DataError``: historical data cannot be read or lacks a required column.
- ``CheckpointError``: a checkpoint file is missing, unreadable, corrupt, of another format
  version, or does not match the configuration it is restored into.
"""

from __future__ import annotations


class RiskmonError(Exception):
    """Root of all errors raised deliberately by riskmon."""


class ConfigError(RiskmonError):
    """A configuration file, key or environment override is invalid."""


class DataError(RiskmonError):
    """Input data is unreadable, lacks a required column, or has an unusable type."""


class CheckpointError(RiskmonError):
    """A checkpoint cannot be read, written or restored into the running configuration."""
