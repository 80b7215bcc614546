"""Tokens, Unix sockets, TLS and timeouts, against real servers."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Dict, Iterator

import pytest

import dipc
from harness import Scope

TOKEN = "Py-Test-Token-0123456789"


@pytest.fixture
def token_file(scope: Scope) -> str:
    return scope.secret_file("token", TOKEN + "\r\n")


def test_token_auth_file_and_environment_variable(scope: Scope, token_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = scope.start(options=["--auth-file", token_file])
    with dipc.Client(port=server.port, token=TOKEN) as c:
        assert c.write(0, b"by token") == 1
    with dipc.Client(port=server.port, token=TOKEN.encode()) as c:
        assert c.read(0).data == b"by token"
    with dipc.Client(port=server.port, auth_file=token_file) as c:
        assert c.read(0).data == b"by token", "the file's \\r\\n is not part of the token"
    monkeypatch.setenv("DIPC_AUTH_FILE", token_file)
    with dipc.Client(port=server.port) as c:
        assert c.read(0).data == b"by token", "$DIPC_AUTH_FILE names the token when no option does"
    monkeypatch.delenv("DIPC_AUTH_FILE")
    with dipc.Client(port=server.port) as c:
        with pytest.raises(dipc.AuthError, match="authentication required"):
            c.read(0)
    assert dipc.read_token(token_file) == TOKEN.encode()


def test_malformed_tokens_and_contradictory_options_are_value_errors(scope: Scope) -> None:
    short = scope.secret_file("short", "tooshort\n")
    for bad in ({"token": "short"}, {"token": "has a space in it 0123"}, {"token": "x" * 201},
                {"auth_file": short}, {"token": TOKEN, "auth_file": short}):
        with pytest.raises(ValueError) as raised:
            dipc.Client(port=1, **bad)  # type: ignore[arg-type]
        assert "tooshort" not in str(raised.value) and "space" not in str(raised.value), "never quote a token"
    with pytest.raises(FileNotFoundError):
        dipc.Client(port=1, auth_file=str(scope.dir / "missing"))
    with pytest.raises(ValueError):
        dipc.Client(unix_path="/tmp/x.sock", tls=True)
    with pytest.raises(ValueError):
        dipc.Client(port=1, tls_ca="ca.pem")
    with pytest.raises(ValueError):
        dipc.Client(port=1, tls=True, tls_cert="c.pem")


def test_unix_socket_with_and_without_a_token(scope: Scope, token_file: str) -> None:
    path = str(scope.dir / "dipc.sock")
    server = scope.start(options=["--unix", path])
    with dipc.Client(unix_path=path, timeout=10) as c:
        assert c.write(1, b"over unix") == 1
        assert c.info()["port"] == str(server.port)
    with dipc.Client(port=server.port) as c:
        assert c.read(1).data == b"over unix", "the Unix socket serves the same mailboxes"
    protected_path = str(scope.dir / "protected.sock")
    scope.start(options=["--unix", protected_path, "--auth-file", token_file])
    with dipc.Client(unix_path=protected_path, auth_file=token_file) as c:
        assert c.read(0).version == 0
    with dipc.Client(unix_path=protected_path) as c:
        with pytest.raises(dipc.AuthError):
            c.read(0)
    with pytest.raises(dipc.DipcConnectionError, match="cannot connect"):
        dipc.Client(unix_path=str(scope.dir / "nobody.sock"))


def test_tls_verifies_the_server_by_ip_and_by_name(scope: Scope, certificates: Dict[str, str]) -> None:
    server = scope.start(options=["--tls-cert", certificates["server"], "--tls-key", certificates["server-key"]])
    with dipc.Client("127.0.0.1", server.port, tls=True, tls_ca=certificates["ca"], timeout=10) as c:
        assert c.write(0, b"secret") == 1
    with dipc.Client("localhost", server.port, tls=True, tls_ca=certificates["ca"], timeout=10) as c:
        assert c.read(0).data == b"secret", "DNS:localhost is in the certificate"
    context = ssl.create_default_context(cafile=certificates["ca"])
    with dipc.Client("127.0.0.1", server.port, ssl_context=context, timeout=10) as c:
        assert c.read(0).version == 1
    with pytest.raises(dipc.DipcConnectionError, match="TLS handshake.*wrong.example"):
        dipc.Client("127.0.0.1", server.port, tls=True, tls_ca=certificates["ca"], tls_server_name="wrong.example")
    with pytest.raises(dipc.DipcConnectionError, match="TLS handshake"):
        dipc.Client("127.0.0.1", server.port, tls=True, tls_ca=certificates["other-ca"])
    with pytest.raises(dipc.DipcConnectionError, match="TLS handshake"):
        dipc.Client("127.0.0.1", server.port, tls=True)  # the system's CAs do not know the test CA
    with pytest.raises(dipc.DipcError) as raised:
        with dipc.Client("127.0.0.1", server.port, timeout=1) as plain:
            plain.read(0)
    assert raised.value.code is None and plain.closed, "clear text to a TLS port is never served"


def test_mutual_tls_with_a_token(scope: Scope, certificates: Dict[str, str], token_file: str) -> None:
    server = scope.start(options=["--tls-cert", certificates["server"], "--tls-key", certificates["server-key"],
                                  "--tls-ca", certificates["ca"], "--auth-file", token_file])
    tls = {"tls": True, "tls_ca": certificates["ca"], "timeout": 10.0}
    with dipc.Client(port=server.port, tls_cert=certificates["client"], tls_key=certificates["client-key"],
                     token=TOKEN, **tls) as c:  # type: ignore[arg-type]
        assert c.push(2, b"mutual") == 1
        assert c.take(2) == dipc.Message(b"mutual", 2)
    for cert, key in ((None, None), (certificates["foreign"], certificates["foreign-key"])):
        with pytest.raises(dipc.DipcConnectionError):
            with dipc.Client(port=server.port, tls_cert=cert, tls_key=key, token=TOKEN, **tls) as c:  # type: ignore[arg-type]
                c.read(0)


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """Accepts connections (in the kernel's backlog) and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=8)
    yield listener
    listener.close()


def test_the_client_timeout_bounds_a_reply(silent_listener: socket.socket) -> None:
    c = dipc.Client("127.0.0.1", silent_listener.getsockname()[1], timeout=0.5)
    start = time.monotonic()
    with pytest.raises(dipc.DipcTimeoutError) as raised:
        c.read(0)
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 5, f"timed out after {elapsed:.2f} s"
    assert isinstance(raised.value, TimeoutError) and isinstance(raised.value, dipc.DipcConnectionError)
    assert c.closed, "after a timeout the connection's state is unknown: closed"


def test_a_waiting_request_gets_its_wait_on_top_of_the_timeout(silent_listener: socket.socket) -> None:
    c = dipc.Client("127.0.0.1", silent_listener.getsockname()[1], timeout=0.3)
    start = time.monotonic()
    with pytest.raises(dipc.DipcTimeoutError):
        c.take(0, wait_ms=700)
    assert time.monotonic() - start >= 0.95, "timeout 0.3 s + wait 0.7 s"


def test_the_connect_timeout_bounds_the_tls_handshake(silent_listener: socket.socket, certificates: Dict[str, str]) -> None:
    start = time.monotonic()
    with pytest.raises(dipc.DipcTimeoutError, match="TLS handshake"):
        dipc.Client("127.0.0.1", silent_listener.getsockname()[1], tls=True, tls_ca=certificates["ca"],
                    timeout=30, connect_timeout=0.5)
    assert time.monotonic() - start < 10
