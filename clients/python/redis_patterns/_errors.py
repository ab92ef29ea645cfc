"""Exceptions. Server error replies keep the server's message word for word."""

from __future__ import annotations

from redis.exceptions import NoPermissionError, ReadOnlyError, ResponseError

__all__ = [
    "BackendError",
    "CommandError",
    "LockNotAcquired",
    "LockNotOwned",
    "PatternsError",
    "PermissionDeniedError",
    "WrongTypeError",
]

# Codes redis-py leaves in the message (it strips ERR, NOPERM, READONLY and a few others).
_KEPT_CODES = frozenset(
    {"WRONGTYPE", "CROSSSLOT", "UNBLOCKED", "OOM", "BUSY", "MISCONF", "TRYAGAIN"}
)


class PatternsError(Exception):
    """Base class of every error this library raises."""


class CommandError(PatternsError):
    """The server refused a command; ``str(error)`` is its reply, code included.

    ``code`` is the reply's first word (``ERR``, ``WRONGTYPE``, ``NOPERM``...).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = message.split(" ", 1)[0]


class WrongTypeError(CommandError):
    """A key holds another type than the command works on (``WRONGTYPE``)."""


class PermissionDeniedError(CommandError):
    """The user's ACL excludes a key the command touches (``NOPERM``)."""


class BackendError(PatternsError):
    """The requested backend is not available (module not loaded, twin not loadable)."""


class LockNotAcquired(PatternsError):
    """A lock or a semaphore permit was not granted (within ``wait_ms`` if given)."""


class LockNotOwned(PatternsError):
    """Releasing or extending a lock (or permit) that this owner no longer holds."""


def from_response(error: ResponseError) -> CommandError:
    """Maps redis-py's error (which strips ``ERR ``/``NOPERM ``) back to the server's reply."""
    text = str(error)
    if isinstance(error, NoPermissionError):
        return PermissionDeniedError(f"NOPERM {text}")
    if isinstance(error, ReadOnlyError):
        return CommandError(f"READONLY {text}")
    code = text.split(" ", 1)[0]
    if code == "WRONGTYPE":
        return WrongTypeError(text)
    if code in _KEPT_CODES:
        return CommandError(text)
    return CommandError(f"ERR {text}")
