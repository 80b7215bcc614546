"""The exception of every error code: provoked on real servers where a client can
provoke it, and mapped from the reply line for the rest."""

from __future__ import annotations

import socket
import threading
from typing import Iterator, List, Type

import pytest

import dipc
from harness import Scope, Server, free_port, sysv_objects, wait_until


def client(server: Server, timeout: float = 10, **options: object) -> dipc.Client:
    return dipc.Client("127.0.0.1", server.port, timeout=timeout, **options)  # type: ignore[arg-type]


def test_range_error_leaves_the_connection_open(server: Server) -> None:
    with client(server) as c:
        with pytest.raises(dipc.RangeError) as raised:
            c.read(4)
        assert raised.value.code == "range" and "4" in raised.value.message
        with pytest.raises(dipc.RangeError):
            c.write(7, b"dropped")
        with pytest.raises(dipc.RangeError):
            c.push(7, b"dropped")
        assert c.write(0, b"still here") == 1, "the write's data was read and dropped, in step"


def test_syntax_error_for_a_negative_number_or_a_wait_over_an_hour(server: Server) -> None:
    with client(server) as c:
        with pytest.raises(dipc.RequestSyntaxError) as raised:
            c.read(-1)
        assert raised.value.code == "syntax"
        with pytest.raises(dipc.RequestSyntaxError):
            c.take(0, wait_ms=dipc.MAX_WAIT_MS + 1)
        with pytest.raises(dipc.RequestSyntaxError):
            c.watch(0, 0, dipc.MAX_WAIT_MS + 1)
        assert c.read(0).version == 0 and not c.closed


def test_size_error_closes_the_client(server: Server) -> None:
    with client(server) as c:
        with pytest.raises(dipc.SizeError) as raised:
            c.write(0, b"x" * 4097)
        assert raised.value.code == "size" and c.closed
        with pytest.raises(dipc.DipcConnectionError):
            c.read(0)
    with client(server) as c:
        with pytest.raises(dipc.SizeError):
            c.push(0, b"x" * 4097)
        assert c.closed


def test_busy_error_when_the_server_has_max_clients(scope: Scope) -> None:
    server = scope.start(options=["--max-clients", "1"])
    with client(server) as first:
        first.info()  # served: the one allowed connection
        second = client(server)
        with pytest.raises(dipc.BusyError) as raised:
            second.read(0)
        assert raised.value.code == "busy" and second.closed
        assert first.stats()["rejected"] == 1


def test_shutdown_error_reaches_a_waiting_take(scope: Scope) -> None:
    server = scope.start()
    errors: List[BaseException] = []
    waiter = client(server, timeout=30)

    def take() -> None:
        try:
            waiter.take(0, wait_ms=60000)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=take)
    thread.start()
    with client(server) as observer:
        assert wait_until(lambda: observer.stats()["queued"] == 1, timeout=10), "the take never waited"
    stopped = scope.dipcrm(server.port)
    assert stopped.returncode == 0, stopped.stderr
    thread.join(timeout=15)
    assert len(errors) == 1 and isinstance(errors[0], dipc.ShutdownError), errors
    assert errors[0].code == "shutdown" and waiter.closed


def test_auth_errors(scope: Scope) -> None:
    token = "Py-Test-Token-0123456789"
    server = scope.start(options=["--auth-file", scope.secret_file("token", token + "\n")])
    with client(server) as c:
        with pytest.raises(dipc.AuthError, match="authentication required"):
            c.read(0)
        assert not c.closed, "a request before authenticating leaves the connection open"
        c.authenticate(token)
        assert c.read(0).version == 0
    with pytest.raises(dipc.AuthError) as raised:
        client(server, token="Wrong-Token-0123456789")
    assert raised.value.code == "auth" and "Wrong-Token" not in str(raised.value)
    unprotected = scope.start()
    with pytest.raises(dipc.AuthError, match="no token is required"):
        client(unprotected, token=token)


def test_connection_refused_is_a_connection_error_and_an_os_error() -> None:
    with pytest.raises(dipc.DipcConnectionError) as raised:
        dipc.Client("127.0.0.1", free_port(), timeout=5)
    assert isinstance(raised.value, OSError) and raised.value.code is None
    assert "cannot connect" in str(raised.value)


def test_an_idle_client_of_a_stopped_server_gets_shutdown(scope: Scope) -> None:
    server = scope.start()
    c = client(server)
    assert c.read(0).version == 0
    assert scope.dipcrm(server.port).returncode == 0
    with pytest.raises(dipc.ShutdownError):
        c.read(0)  # the server answered the idle connection `err shutdown` when it stopped
    assert c.closed


@pytest.fixture
def fake_server() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that the test answers by hand."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    yield listener
    listener.close()


def serve_once(listener: socket.socket, reply: bytes) -> threading.Thread:
    def run() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(10)
            connection.recv(4096)
            connection.sendall(reply)
            connection.shutdown(socket.SHUT_WR)
            try:
                connection.recv(4096)
            except OSError:
                pass
    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("reply", [b"hello\n", b"ok 5\n", b"ok x 1\n", b"ok -1 1\n"])
def test_a_reply_that_is_not_the_protocol_is_a_protocol_error(fake_server: socket.socket, reply: bytes) -> None:
    thread = serve_once(fake_server, reply)
    c = dipc.Client("127.0.0.1", fake_server.getsockname()[1], timeout=10)
    with pytest.raises(dipc.ProtocolError):
        c.read(0)
    assert c.closed
    thread.join(timeout=10)


def test_a_value_cut_short_is_a_connection_error(fake_server: socket.socket) -> None:
    thread = serve_once(fake_server, b"ok 10 1\nshort")
    c = dipc.Client("127.0.0.1", fake_server.getsockname()[1], timeout=10)
    with pytest.raises(dipc.DipcConnectionError, match="middle of a value"):
        c.read(0)
    thread.join(timeout=10)


@pytest.mark.parametrize("code, cls", [
    ("syntax", dipc.RequestSyntaxError), ("range", dipc.RangeError), ("size", dipc.SizeError),
    ("busy", dipc.BusyError), ("timeout", dipc.ServerTimeoutError), ("shutdown", dipc.ShutdownError),
    ("full", dipc.FullError), ("empty", dipc.EmptyError), ("internal", dipc.InternalError),
    ("auth", dipc.AuthError), ("unavailable", dipc.UnavailableError),
])
def test_every_error_code_has_its_exception(fake_server: socket.socket, code: str, cls: Type[dipc.DipcError]) -> None:
    """Codes a client cannot provoke on a sysv server (timeout: the client never stops
    mid-request; internal: a backend failure; unavailable: etcd) are checked here too."""
    thread = serve_once(fake_server, f"err {code} what happened\n".encode())
    with dipc.Client("127.0.0.1", fake_server.getsockname()[1], timeout=10) as c:
        with pytest.raises(cls) as raised:
            c.read(0)
    assert type(raised.value) is cls and raised.value.code == code and raised.value.message == "what happened"
    assert isinstance(raised.value, dipc.DipcError)
    thread.join(timeout=10)


def test_an_unknown_code_is_a_plain_dipc_error(fake_server: socket.socket) -> None:
    thread = serve_once(fake_server, b"err novel something new\n")
    with dipc.Client("127.0.0.1", fake_server.getsockname()[1], timeout=10) as c:
        with pytest.raises(dipc.DipcError) as raised:
            c.read(0)
    assert type(raised.value) is dipc.DipcError and raised.value.code == "novel"
    thread.join(timeout=10)


def test_unavailable_says_whether_the_outcome_is_unknown() -> None:
    assert dipc.UnavailableError("etcd: no majority; outcome unknown").outcome_unknown
    assert not dipc.UnavailableError("etcd: no majority").outcome_unknown


def test_the_servers_timeout_is_not_the_clients() -> None:
    assert not issubclass(dipc.ServerTimeoutError, TimeoutError)
    assert issubclass(dipc.DipcTimeoutError, TimeoutError) and issubclass(dipc.DipcTimeoutError, dipc.DipcConnectionError)


def test_dipcrm_leaves_no_store_behind(scope: Scope) -> None:
    """The harness's own promise: what a test started is gone after dipcrm."""
    server = scope.start("sysv")
    assert sysv_objects(server.name), "a sysv server has a segment and semaphores"
    assert scope.dipcrm(server.port).returncode == 0
    assert scope.record(server.port) is None and sysv_objects(server.name) == []
