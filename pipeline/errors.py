"""Error kinds that decide what happens next.

Retries key off these classes: a TransientError may succeed if tried again (a network blip, a locked
file), a TerminalError will not (bad credentials, bad data, a bad setting). Every message says what
went wrong, where, and how to fix it, and never carries a secret.
"""

from __future__ import annotations


class AlignloopError(Exception):
    """Base of every error alignloop raises on purpose."""

    transient: bool = False


class TransientError(AlignloopError):
    """Worth retrying: the same call may succeed later."""

    transient = True


class TerminalError(AlignloopError):
    """Not worth retrying: something must change first (a setting, the data, a permission)."""


class ConfigError(TerminalError):
    """A setting is wrong. The message names the field and the fix."""


class DataError(TerminalError):
    """The data cannot be used as it is (for example: too few rows for the chosen method)."""
