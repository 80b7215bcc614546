"""The exceptions of the dipc package.

Everything the package raises for a failed request is a `DipcError`:

- the server answered `err CODE MESSAGE` (docs/PROTOCOL.md, "Errors"): one subclass
  per CODE (`RangeError` for `range`, `EmptyError` for `empty`, ...), with `.code` and
  `.message`; a code this version does not know yet raises `DipcError` itself;
- the connection failed (cannot connect, TLS handshake refused, closed by the server,
  no reply within the client's timeout): `DipcConnectionError`, also an `OSError`
  (`DipcTimeoutError`, also a `TimeoutError`, when the client's timeout ran out);
- the server's bytes are not the protocol: `ProtocolError`.

Wrong arguments (a mailbox that is not an `int`, a token of the wrong shape, TLS on a
Unix socket) raise `TypeError` or `ValueError` before anything is sent.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "DipcError",
    "RequestSyntaxError",
    "RangeError",
    "SizeError",
    "BusyError",
    "ServerTimeoutError",
    "ShutdownError",
    "FullError",
    "EmptyError",
    "InternalError",
    "AuthError",
    "UnavailableError",
    "DipcConnectionError",
    "DipcTimeoutError",
    "ProtocolError",
    "error_for_reply",
]


class DipcError(Exception):
    """Base of every error of this package.

    `code` is the server's error code (`"range"`, `"empty"`, ...) when the server
    answered `err`, and None when the failure is on the client's side of the wire
    (`DipcConnectionError`, `ProtocolError`). `message` is the server's text (for
    people; never parse it) or the client's description of the failure.
    """

    #: The error code this class stands for (None: not a server error).
    expected_code: Optional[str] = None
    #: Whether the server closes the connection after answering this code.
    closes_connection: bool = False

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        self.code: Optional[str] = code if code is not None else self.expected_code
        self.message: str = message
        super().__init__(f"{self.code}: {message}" if self.code and message else (self.code or message))


class RequestSyntaxError(DipcError):
    """`err syntax`: the server could not parse the request (e.g. a negative mailbox
    number, or a WAIT_MS over 3600000). The connection stays open."""

    expected_code = "syntax"


class RangeError(DipcError):
    """`err range`: the mailbox number is not in 0..mailboxes-1. Stays open."""

    expected_code = "range"


class SizeError(DipcError):
    """`err size`: the data is larger than a mailbox. The server closes the connection."""

    expected_code = "size"
    closes_connection = True


class BusyError(DipcError):
    """`err busy`: the server already serves `--max-clients` connections; it closed
    this one."""

    expected_code = "busy"
    closes_connection = True


class ServerTimeoutError(DipcError):
    """`err timeout`: the server stopped waiting for the rest of a started request
    (its `--io-timeout`) and closed the connection. Not to be confused with
    `DipcTimeoutError`, the client's own timeout."""

    expected_code = "timeout"
    closes_connection = True


class ShutdownError(DipcError):
    """`err shutdown`: the server is stopping; it closed the connection."""

    expected_code = "shutdown"
    closes_connection = True


class FullError(DipcError):
    """`err full`: a push found no room within its wait. Stays open."""

    expected_code = "full"


class EmptyError(DipcError):
    """`err empty`: a take found no message within its wait. Stays open."""

    expected_code = "empty"


class InternalError(DipcError):
    """`err internal`: a backend failure on the server (the message names it). Stays open."""

    expected_code = "internal"


class AuthError(DipcError):
    """`err auth`: a request before authenticating on a server with `--auth-file`
    (stays open), a wrong token (the server closes), or a token given to a server
    that requires none."""

    expected_code = "auth"


class UnavailableError(DipcError):
    """`err unavailable`: the store (etcd) could not be reached within the server's
    `--io-timeout`. Stays open. The request had no effect unless
    `outcome_unknown` is true."""

    expected_code = "unavailable"

    @property
    def outcome_unknown(self) -> bool:
        """Whether the change may have been applied (the message says `outcome unknown`)."""
        return "outcome unknown" in self.message


class DipcConnectionError(DipcError, OSError):
    """The connection could not be made or was lost: refused, TLS handshake failed,
    closed by the server, or a client that is already closed. The `Client` is closed
    after it."""


class DipcTimeoutError(DipcConnectionError, TimeoutError):
    """No reply (or no connection) within the client's timeout. The connection's state
    is unknown afterwards, so the `Client` is closed."""


class ProtocolError(DipcError):
    """The server's reply is not dipc/1 (e.g. not `ok`/`err`, or a malformed number).
    The `Client` is closed after it."""


_BY_CODE: Dict[str, Type[DipcError]] = {
    cls.expected_code: cls
    for cls in (
        RequestSyntaxError,
        RangeError,
        SizeError,
        BusyError,
        ServerTimeoutError,
        ShutdownError,
        FullError,
        EmptyError,
        InternalError,
        AuthError,
        UnavailableError,
    )
    if cls.expected_code is not None
}


def error_for_reply(code: str, message: str) -> DipcError:
    """The exception for the reply `err CODE MESSAGE`: the code's subclass, or
    `DipcError` with that code when this version does not know it."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return DipcError(message, code=code)
    return cls(message)
