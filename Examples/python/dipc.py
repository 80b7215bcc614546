"""A DIPC client in plain Python (standard library only).

The wire protocol is in docs/PROTOCOL.md; this module is about 100 lines because the
protocol is small: a header line, then exactly LEN data bytes, in both directions.

    from dipc import Client, DIPCError
    with Client(port=7070) as c:
        version = c.write(0, b"hello")
        data, version = c.read(0)
        c.push(1, b"job 1")
        data, version = c.consume(1, wait_ms=1000)

Every call raises DIPCError (with .code: "range", "size", "empty", "full", ...) when
the server answers `err CODE MESSAGE`, and OSError when the connection fails.

Access (SPEC §1): `Client(unix_path="/run/dipc.sock")` uses a Unix socket;
`auth_file=PATH` (else $DIPC_AUTH_FILE) sends the token first; `tls=True` speaks TLS,
verifying the server against `tls_ca` (else the system's CAs) and its host name or
IP, and `tls_cert`/`tls_key` present a client certificate.
"""

import os
import socket
import ssl

__all__ = ["Client", "DIPCError", "read_token"]


class DIPCError(Exception):
    """The server answered `err CODE MESSAGE`."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class Client:
    """One TCP connection to a dipc server. Not thread-safe: one per thread."""

    def __init__(self, host="127.0.0.1", port=7070, timeout=30.0, unix_path=None, auth_file=None,
                 tls=False, tls_ca=None, tls_cert=None, tls_key=None):
        self._timeout = timeout
        if unix_path is not None:
            if tls:
                raise ValueError("a Unix socket does not speak TLS")
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            self._sock.connect(unix_path)
        else:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            context = ssl.create_default_context(cafile=tls_ca)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if tls_cert or tls_key:
                context.load_cert_chain(tls_cert, tls_key)
            # check_hostname verifies a host name or an IP address against the certificate.
            self._sock = context.wrap_socket(self._sock, server_hostname=host)
        self._file = self._sock.makefile("rb")
        auth_file = auth_file or os.environ.get("DIPC_AUTH_FILE")
        if auth_file:
            self.authenticate(read_token(auth_file))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests --------------------------------------------------------------

    def read(self, mailbox):
        """`r N`: (data, version) of the mailbox's newest message."""
        return self._data_reply(f"r {mailbox}\n".encode())

    def watch(self, mailbox, after_version, wait_ms):
        """`r N VERSION WAIT_MS`: waits until the version is above after_version (or
        wait_ms passed), then reads."""
        return self._data_reply(f"r {mailbox} {after_version} {wait_ms}\n".encode(), wait_ms)

    def write(self, mailbox, data):
        """`w N LEN` + data: replaces the mailbox's content; returns the new version."""
        data = _bytes(data)
        return self._version_reply(f"w {mailbox} {len(data)}\n".encode() + data)

    def push(self, mailbox, data, wait_ms=0):
        """`p N LEN [WAIT_MS]` + data: appends to the mailbox's queue; the new version."""
        data = _bytes(data)
        wait = f" {wait_ms}" if wait_ms else ""
        return self._version_reply(f"p {mailbox} {len(data)}{wait}\n".encode() + data, wait_ms)

    def consume(self, mailbox, wait_ms=0):
        """`c N [WAIT_MS]`: removes and returns (data, version) of the oldest message."""
        wait = f" {wait_ms}" if wait_ms else ""
        return self._data_reply(f"c {mailbox}{wait}\n".encode(), wait_ms)

    def info(self):
        """`i`: the server's description as a dict of strings."""
        return self._pairs(b"i\n", banner="dipc/")

    def stats(self):
        """`s`: the server's counters as a dict of ints."""
        return {k: int(v) for k, v in self._pairs(b"s\n").items()}

    def authenticate(self, token):
        """`a TOKEN`: presents the server's --auth-file token (a wrong one closes)."""
        self._send(b"a " + _bytes(token) + b"\n")
        self._line()

    def close(self):
        """`q`, then closes the connection (errors while quitting are ignored)."""
        try:
            self._sock.sendall(b"q\n")
            self._line()
        except (OSError, DIPCError):
            pass
        self._file.close()
        self._sock.close()

    # -- replies ---------------------------------------------------------------

    def _send(self, request, wait_ms=0):
        self._sock.settimeout(self._timeout + wait_ms / 1000 if self._timeout else None)
        self._sock.sendall(request)

    def _line(self):
        line = self._file.readline(65536)
        if not line.endswith(b"\n"):
            raise OSError("connection closed by the server")
        words = line.rstrip(b"\r\n").decode("utf-8", "replace").split(" ")
        if words[0] == "err":
            raise DIPCError(words[1] if len(words) > 1 else "", " ".join(words[2:]))
        if words[0] not in ("ok", "bye"):
            raise OSError(f"unexpected reply {line!r}")
        return words[1:]

    def _data_reply(self, request, wait_ms=0):
        self._send(request, wait_ms)
        length, version = (int(w) for w in self._line())
        data = self._file.read(length)
        if len(data) != length:
            raise OSError("connection closed in the middle of a value")
        return data, version

    def _version_reply(self, request, wait_ms=0):
        self._send(request, wait_ms)
        (version,) = self._line()
        return int(version)

    def _pairs(self, request, banner=None):
        self._send(request)
        words = self._line()
        if banner and words and words[0].startswith(banner):
            words = words[1:]
        return dict(w.split("=", 1) for w in words if "=" in w)


def read_token(path):
    """The token of an auth file: its first line without `\n` (and a `\r` before it)."""
    with open(path, "rb") as f:
        return f.readline().rstrip(b"\r\n")


def _bytes(data):
    return data.encode() if isinstance(data, str) else bytes(data)
