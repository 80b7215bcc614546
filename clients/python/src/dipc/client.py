"""`Client`: one connection to a dipc server (protocol dipc/1, docs/PROTOCOL.md)."""

from __future__ import annotations

import socket
import ssl
import threading
from types import TracebackType
from typing import Callable, Dict, List, NamedTuple, Optional, Type, TypeVar, Union

from .errors import (
    AuthError,
    DipcConnectionError,
    DipcError,
    DipcTimeoutError,
    ProtocolError,
    error_for_reply,
)
from .token import StrPath, check_token, token_from_options

__all__ = ["Client", "Message", "Data", "DEFAULT_PORT", "MAX_WAIT_MS"]

#: The port `make run` and the docs use.
DEFAULT_PORT = 7070
#: The longest wait the server accepts, in milliseconds (more is `err syntax`).
MAX_WAIT_MS = 3_600_000
#: What a value may be given as: bytes-like, or str (sent as UTF-8).
Data = Union[bytes, bytearray, memoryview, str]

_MAX_REPLY_LINE = 65536
_QUIT_TIMEOUT = 2.0
_T = TypeVar("_T")


class Message(NamedTuple):
    """A value read or taken from a mailbox, with the mailbox's version after the
    request (its count of completed changes). Unpacks as `data, version = ...`."""

    data: bytes
    version: int


class Client:
    """One connection to a dipc server, over TCP (optionally TLS) or a Unix socket.

    Every request method sends one request and returns its reply; a server's `err`
    reply raises the `DipcError` subclass of its code, a failed connection
    `DipcConnectionError` (`DipcTimeoutError` when `timeout` ran out). After an error
    that ends the connection (connection errors, `size`, `busy`, `timeout`,
    `shutdown`, a refused token) the client is closed and every later call raises
    `DipcConnectionError`. Requests from several threads are sent one at a time.

    Use it as a context manager, or call `close()`:

        with dipc.Client(port=7070) as c:
            c.write(0, b"hello")
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        unix_path: Optional[StrPath] = None,
        timeout: Optional[float] = 30.0,
        connect_timeout: Optional[float] = None,
        token: Optional[Union[str, bytes]] = None,
        auth_file: Optional[StrPath] = None,
        tls: bool = False,
        tls_ca: Optional[StrPath] = None,
        tls_cert: Optional[StrPath] = None,
        tls_key: Optional[StrPath] = None,
        tls_server_name: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        """Connects, handshakes TLS if asked, and presents the token if there is one.

        - `host`, `port`: the server's TCP address; `unix_path` instead: its `--unix` socket.
        - `timeout`: seconds to wait for each reply (a waiting request gets its WAIT_MS
          on top); None waits forever. `connect_timeout`: seconds for connecting and the
          TLS handshake (default: `timeout`).
        - `token`, else `auth_file`'s first line, else the file named by
          `$DIPC_AUTH_FILE`: sent as `a TOKEN` before anything else.
        - `tls=True`: TLS 1.2 or later, verifying the server's certificate against
          `tls_ca` (a PEM bundle; default: the system's CAs) and its name or IP address
          against `tls_server_name` (default: `host`); `tls_cert`/`tls_key` present a
          client certificate (mutual TLS). `ssl_context` replaces all of that with a
          context of your own (and implies TLS).

        Raises ValueError/TypeError for contradictory or malformed options,
        `DipcConnectionError`/`DipcTimeoutError` when the connection or the handshake
        fails, `AuthError` when the server refuses the token.
        """
        if ssl_context is not None:
            if tls_ca is not None or tls_cert is not None or tls_key is not None:
                raise ValueError("ssl_context replaces tls_ca, tls_cert and tls_key: give one or the other")
            tls = True
        if not tls and (tls_ca is not None or tls_cert is not None or tls_key is not None or tls_server_name is not None):
            raise ValueError("tls_ca, tls_cert, tls_key and tls_server_name need tls=True")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if unix_path is not None and tls:
            raise ValueError("a Unix socket does not speak TLS")
        auth_token = token_from_options(token, auth_file)

        self._timeout = timeout
        self._lock = threading.Lock()
        self._closed = True
        self._interrupted = False
        where = str(unix_path) if unix_path is not None else f"{host}:{port}"
        self._where = where
        connect_timeout = timeout if connect_timeout is None else connect_timeout
        sock = _connect(host, port, unix_path, connect_timeout, where)
        try:
            if tls:
                context = ssl_context or _tls_context(tls_ca, tls_cert, tls_key)
                sock = _handshake(context, sock, tls_server_name or host, connect_timeout, where)
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket = sock
        self._file = sock.makefile("rb")
        self._closed = False
        if auth_token is not None:
            try:
                self._authenticate(auth_token)
            except BaseException:
                self._shut()
                raise

    # -- life cycle ----------------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<dipc.Client {self._where} {'closed' if self._closed else 'open'}>"

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by `close()` or after an error that ends it)."""
        return self._closed

    def close(self) -> None:
        """Sends `q` (waiting at most 2 s for `bye`), then closes the connection.
        Idempotent; never raises. Called while another thread is in a request (a
        `take` with a long wait, say), it cuts the connection at once instead: that
        request raises `DipcConnectionError` (a waiting `take` takes nothing)."""
        if not self._lock.acquire(blocking=False):
            self._interrupted = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._lock.acquire()
        try:
            if self._closed:
                return
            try:
                self._sock.settimeout(_QUIT_TIMEOUT if self._timeout is None else min(self._timeout, _QUIT_TIMEOUT))
                self._sock.sendall(b"q\n")
                self._file.readline(_MAX_REPLY_LINE)
            except OSError:
                pass
            self._shut()
        finally:
            self._lock.release()

    # -- requests --------------------------------------------------------------------

    def read(self, mailbox: int) -> Message:
        """`r N`: the newest message of `mailbox` (b"" and its version when it holds none)."""
        return self._exchange(f"r {_number(mailbox, 'mailbox')}\n".encode(), 0, self._message_reply)

    def watch(self, mailbox: int, after_version: int, wait_ms: int) -> Message:
        """`r N VERSION WAIT_MS`: waits until the mailbox's version is above
        `after_version` or `wait_ms` milliseconds passed, then reads as `read`. Compare
        the returned version with `after_version` to know which happened."""
        header = f"r {_number(mailbox, 'mailbox')} {_number(after_version, 'after_version')} {_number(wait_ms, 'wait_ms')}\n"
        return self._exchange(header.encode(), wait_ms, self._message_reply)

    def write(self, mailbox: int, data: Data) -> int:
        """`w N LEN` + data: the mailbox now holds exactly this one message; returns its
        new version. Raises `SizeError` (and closes) when `data` is larger than a mailbox."""
        payload = _payload(data)
        header = f"w {_number(mailbox, 'mailbox')} {len(payload)}\n".encode()
        return self._exchange(header + payload, 0, self._version_reply)

    def push(self, mailbox: int, data: Data, wait_ms: int = 0) -> int:
        """`p N LEN [WAIT_MS]` + data: appends a message to the mailbox's queue, waiting up
        to `wait_ms` milliseconds for room; returns the new version. Raises `FullError`
        when there was no room, `SizeError` (and closes) when it could never fit."""
        payload = _payload(data)
        wait = f" {_number(wait_ms, 'wait_ms')}" if wait_ms != 0 else ""
        header = f"p {_number(mailbox, 'mailbox')} {len(payload)}{wait}\n".encode()
        return self._exchange(header + payload, wait_ms, self._version_reply)

    def take(self, mailbox: int, wait_ms: int = 0) -> Message:
        """`c N [WAIT_MS]`: removes and returns the oldest message of the mailbox's queue
        (with the version after the take), waiting up to `wait_ms` milliseconds for one.
        Raises `EmptyError` when there was none."""
        wait = f" {_number(wait_ms, 'wait_ms')}" if wait_ms != 0 else ""
        return self._exchange(f"c {_number(mailbox, 'mailbox')}{wait}\n".encode(), wait_ms, self._message_reply)

    def info(self) -> Dict[str, str]:
        """`i`: the server's description (`backend`, `name`, `mailboxes`,
        `mailbox_size`, `packet_size`, `coordinator`, ... as strings)."""
        words = self._exchange(b"i\n", 0, self._line)
        if not words or not words[0].startswith("dipc/"):
            self._shut()
            raise ProtocolError(f"the reply to i does not start with dipc/: {' '.join(words)!r}")
        return _pairs(words[1:])

    def stats(self) -> Dict[str, int]:
        """`s`: this server's counters since it started (`connections`, `accepted`,
        `reads`, `writes`, `pushes`, `takes`, `errors`, `bytes_in`, ...)."""
        pairs = _pairs(self._exchange(b"s\n", 0, self._line))
        try:
            return {key: int(value) for key, value in pairs.items()}
        except ValueError:
            self._shut()
            raise ProtocolError(f"a counter of s is not a number: {pairs!r}") from None

    def authenticate(self, token: Union[str, bytes]) -> None:
        """`a TOKEN`: presents the server's `--auth-file` token (the constructor does
        it for you with `token`/`auth_file`). Raises `AuthError` and closes the client
        when the server refuses it (a wrong token, or a server that requires none)."""
        self._authenticate(check_token(token))

    # -- replies -------------------------------------------------------------------

    def _authenticate(self, token: bytes) -> None:
        try:
            self._exchange(b"a " + token + b"\n", 0, self._ok_reply)
        except AuthError:
            self._shut()
            raise

    def _exchange(self, request: bytes, wait_ms: int, reply: Callable[[], _T]) -> _T:
        """Sends `request` and parses its reply with `reply`, holding the lock; turns
        socket failures into `DipcConnectionError` and closes after errors that end
        the connection."""
        with self._lock:
            if self._closed:
                raise DipcConnectionError(f"the connection to {self._where} is closed")
            try:
                self._sock.settimeout(None if self._timeout is None else self._timeout + max(wait_ms, 0) / 1000)
                try:
                    self._sock.sendall(request)
                except OSError as send_error:
                    # The server may have answered (e.g. `err busy`) and closed before
                    # reading the request: its reply is the better explanation.
                    try:
                        reply()
                    except DipcError as answered:
                        if answered.code is not None:
                            raise answered from send_error
                    raise
                return reply()
            except DipcError as error:
                if error.closes_connection or error.code is None:
                    self._shut()
                raise
            except socket.timeout as error:
                self._shut()
                raise DipcTimeoutError(f"no reply from {self._where} within the client's timeout") from error
            except OSError as error:
                self._shut()
                raise DipcConnectionError(f"connection to {self._where} failed: {_reason(error)}") from error

    def _line(self) -> List[str]:
        """The next reply line's words after `ok`/`bye`; raises the error of an `err` line."""
        raw = self._file.readline(_MAX_REPLY_LINE)
        if not raw.endswith(b"\n"):
            if len(raw) >= _MAX_REPLY_LINE:
                raise ProtocolError(f"a reply line from {self._where} is longer than {_MAX_REPLY_LINE} bytes")
            if self._interrupted:
                raise DipcConnectionError(f"the connection to {self._where} was closed while waiting for a reply")
            raise DipcConnectionError(f"connection closed by the server ({self._where})")
        text = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
        kind, _, rest = text.partition(" ")
        if kind == "err":
            code, _, message = rest.partition(" ")
            raise error_for_reply(code, message)
        if kind not in ("ok", "bye"):
            raise ProtocolError(f"unexpected reply from {self._where}: {text!r}")
        return rest.split(" ") if rest else []

    def _ok_reply(self) -> None:
        words = self._line()
        if words:
            raise ProtocolError(f"expected a bare ok, got {' '.join(words)!r}")

    def _version_reply(self) -> int:
        words = self._line()
        if len(words) != 1:
            raise ProtocolError(f"expected ok VERSION, got {' '.join(words)!r}")
        return _parse_number(words[0])

    def _message_reply(self) -> Message:
        words = self._line()
        if len(words) != 2:
            raise ProtocolError(f"expected ok LEN VERSION, got {' '.join(words)!r}")
        length, version = _parse_number(words[0]), _parse_number(words[1])
        data = self._file.read(length)
        if len(data) != length:
            raise DipcConnectionError(f"connection closed in the middle of a value ({self._where})")
        return Message(data, version)

    def _shut(self) -> None:
        """Closes the socket without a goodbye."""
        self._closed = True
        for closeable in (getattr(self, "_file", None), getattr(self, "_sock", None)):
            if closeable is not None:
                try:
                    closeable.close()
                except OSError:
                    pass


def _connect(host: str, port: int, unix_path: Optional[StrPath], timeout: Optional[float], where: str) -> socket.socket:
    try:
        if unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(str(unix_path))
            except BaseException:
                sock.close()
                raise
            return sock
        return socket.create_connection((host, _number_value(port, "port")), timeout=timeout)
    except socket.timeout as error:
        raise DipcTimeoutError(f"cannot connect to {where}: timed out") from error
    except OSError as error:
        raise DipcConnectionError(f"cannot connect to {where}: {_reason(error)}") from error


def _tls_context(ca: Optional[StrPath], cert: Optional[StrPath], key: Optional[StrPath]) -> ssl.SSLContext:
    """A client context: TLS 1.2+, server certificate and name verified."""
    context = ssl.create_default_context(cafile=None if ca is None else str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


def _handshake(context: ssl.SSLContext, sock: socket.socket, server_name: str, timeout: Optional[float], where: str) -> socket.socket:
    try:
        sock.settimeout(timeout)
        return context.wrap_socket(sock, server_hostname=server_name)
    except socket.timeout as error:
        raise DipcTimeoutError(f"TLS handshake with {where}: timed out") from error
    except OSError as error:
        raise DipcConnectionError(f"TLS handshake with {where} failed: {_reason(error)}") from error


def _number_value(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def _number(value: object, what: str) -> str:
    """A header field: the decimal digits of an int (a negative one is left for the
    server to refuse with `err syntax`)."""
    return str(_number_value(value, what))


def _payload(data: Data) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"data must be bytes-like or str, not {type(data).__name__}")


def _parse_number(word: str) -> int:
    if not word.isdigit() or not word.isascii():
        raise ProtocolError(f"expected a decimal number, got {word!r}")
    return int(word)


def _pairs(words: List[str]) -> Dict[str, str]:
    return dict(word.split("=", 1) for word in words if "=" in word)


def _reason(error: OSError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason).lower().replace("_", " ")
    return error.strerror or str(error) or type(error).__name__
