"""dipc: a client for DIPC, the shared-memory mailbox and queue server.

    import dipc

    with dipc.Client(port=7070) as c:
        version = c.write(0, b"hello")
        data, version = c.read(0)
        c.push(1, b"job 1")
        message = c.take(1, wait_ms=1000)

Standard library only. The protocol is docs/PROTOCOL.md of the DIPC repository; this
package's README lists the API and the errors.
"""

from .client import DEFAULT_PORT, MAX_WAIT_MS, Client, Data, Message
from .errors import (
    AuthError,
    BusyError,
    DipcConnectionError,
    DipcError,
    DipcTimeoutError,
    EmptyError,
    FullError,
    InternalError,
    ProtocolError,
    RangeError,
    RequestSyntaxError,
    ServerTimeoutError,
    ShutdownError,
    SizeError,
    UnavailableError,
)
from .token import AUTH_FILE_VARIABLE, read_token

__version__ = "1.0.0"

__all__ = [
    "Client",
    "Message",
    "Data",
    "DEFAULT_PORT",
    "MAX_WAIT_MS",
    "AUTH_FILE_VARIABLE",
    "read_token",
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
]
