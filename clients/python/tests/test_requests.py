"""Every request method of dipc.Client against a real server (sysv unless said)."""

from __future__ import annotations

import threading
import time
from typing import List

import pytest

import dipc
from harness import Scope, Server, wait_until


def client(server: Server, timeout: float = 10, **options: object) -> dipc.Client:
    return dipc.Client("127.0.0.1", server.port, timeout=timeout, **options)  # type: ignore[arg-type]


def queued(server: Server) -> int:
    with client(server) as c:
        return c.stats()["queued"]


def test_write_then_read_returns_the_data_and_version(server: Server) -> None:
    with client(server) as c:
        assert c.read(0) == dipc.Message(b"", 0), "a never-written mailbox reads empty, version 0"
        assert c.write(0, b"hello") == 1
        assert c.write(0, "héllo") == 2, "str is sent as UTF-8"
        message = c.read(0)
        assert message.data == "héllo".encode() and message.version == 2
        data, version = c.read(0)
        assert (data, version) == ("héllo".encode(), 2)


def test_values_are_binary_exact_up_to_the_mailbox_size(server: Server) -> None:
    every_byte = bytes(range(256)) * 16  # 4096 bytes: exactly one mailbox
    with client(server) as c:
        assert c.write(1, bytearray(every_byte)) == 1
        assert c.read(1).data == every_byte
        assert c.write(1, memoryview(b"\n\r\n")) == 2
        assert c.read(1).data == b"\n\r\n"
        assert c.write(1, b"") == 3
        assert c.read(1) == dipc.Message(b"", 3)


def test_what_one_client_writes_another_reads(server: Server) -> None:
    with client(server) as writer, client(server) as reader:
        writer.write(2, b"shared")
        assert reader.read(2) == dipc.Message(b"shared", 1)


def test_push_and_take_are_first_in_first_out_with_versions(server: Server) -> None:
    with client(server) as c:
        jobs: List[dipc.Data] = [b"first", "second", bytearray(b"third")]
        assert [c.push(1, job) for job in jobs] == [1, 2, 3]
        assert c.take(1) == dipc.Message(b"first", 4)
        assert c.take(1) == dipc.Message(b"second", 5)
        assert c.take(1, wait_ms=100) == dipc.Message(b"third", 6)
        with pytest.raises(dipc.EmptyError):
            c.take(1)
        assert c.read(1) == dipc.Message(b"", 6), "an emptied mailbox reads empty"


def test_take_waits_for_a_push_from_another_client(server: Server) -> None:
    taken: List[dipc.Message] = []
    failures: List[BaseException] = []

    def taker() -> None:
        try:
            with client(server) as c:
                taken.append(c.take(3, wait_ms=20000))
        except BaseException as error:  # reported below
            failures.append(error)

    thread = threading.Thread(target=taker)
    start = time.monotonic()
    thread.start()
    assert wait_until(lambda: queued(server) == 1, timeout=10), "the take never started waiting"
    with client(server) as c:
        c.push(3, b"late job")
    thread.join(timeout=15)
    assert not thread.is_alive() and not failures, failures
    assert taken == [dipc.Message(b"late job", 2)]
    assert time.monotonic() - start < 15, "the take must wake on the push, not at the end of its wait"


def test_take_with_a_wait_gives_up_after_it(server: Server) -> None:
    with client(server, timeout=0.3) as c:
        start = time.monotonic()
        with pytest.raises(dipc.EmptyError) as raised:
            c.take(0, wait_ms=1200)
        elapsed = time.monotonic() - start
        assert raised.value.code == "empty"
        assert elapsed >= 1.1, f"returned after {elapsed:.2f} s, before its wait"
        assert not c.closed, "the client's timeout (0.3 s) must be extended by the wait"
        assert c.read(0).version == 0, "err empty leaves the connection open"


def test_push_to_a_full_queue_fails_at_once_or_after_its_wait(server: Server) -> None:
    with client(server) as c:
        pushed = 0
        with pytest.raises(dipc.FullError):
            for _ in range(1000):
                c.push(0, b"x" * 1000)
                pushed += 1
        assert pushed == 4, "4 KiB holds four 1000-byte messages (8 bytes overhead each)"
        start = time.monotonic()
        with pytest.raises(dipc.FullError) as raised:
            c.push(0, b"x" * 1000, wait_ms=300)
        assert raised.value.code == "full" and time.monotonic() - start >= 0.25
        assert c.take(0).data == b"x" * 1000, "the connection stays open after err full"


def test_push_waits_for_room_made_by_a_take(server: Server) -> None:
    with client(server) as c:
        for _ in range(4):
            c.push(0, b"y" * 1000)
        results: List[int] = []
        thread = threading.Thread(target=lambda: results.append(c.push(0, b"z" * 1000, wait_ms=20000)))
        thread.start()
        assert wait_until(lambda: queued(server) == 1, timeout=10), "the push never started waiting"
        with client(server) as other:
            assert other.take(0).data == b"y" * 1000
        thread.join(timeout=15)
        assert results == [6], "the push completes as soon as a take makes room"


def test_watch_returns_at_once_when_the_version_is_already_above(server: Server) -> None:
    with client(server) as c:
        c.write(0, b"v1")
        start = time.monotonic()
        assert c.watch(0, 0, 20000) == dipc.Message(b"v1", 1)
        assert time.monotonic() - start < 10


def test_watch_without_a_change_answers_what_is_there_after_its_wait(server: Server) -> None:
    with client(server, timeout=0.2) as c:
        c.write(0, b"same")
        start = time.monotonic()
        assert c.watch(0, 1, 500) == dipc.Message(b"same", 1)
        assert time.monotonic() - start >= 0.45


def test_watch_wakes_on_a_write_from_another_client(server: Server) -> None:
    seen: List[dipc.Message] = []
    with client(server) as watcher, client(server) as writer:
        thread = threading.Thread(target=lambda: seen.append(watcher.watch(1, 0, 20000)))
        start = time.monotonic()
        thread.start()
        writer.write(1, b"news")
        thread.join(timeout=15)
        assert seen == [dipc.Message(b"news", 1)]
        assert time.monotonic() - start < 15


def test_info_describes_the_server(server: Server) -> None:
    with client(server) as c:
        info = c.info()
    assert info["backend"] == "sysv" and info["name"] == server.name
    assert (info["mailboxes"], info["mailbox_size"], info["packet_size"]) == ("4", "4096", "1024")
    assert info["coordinator"] == "fifo" and info["port"] == str(server.port)


def test_stats_count_this_clients_requests(server: Server) -> None:
    with client(server) as c:
        c.write(0, b"a")
        c.read(0)
        c.read(0)
        c.push(1, b"b")
        c.take(1)
        with pytest.raises(dipc.RangeError):
            c.read(9)
        stats = c.stats()
    assert {k: stats[k] for k in ("writes", "reads", "pushes", "takes", "errors", "connections")} == {
        "writes": 1, "reads": 2, "pushes": 1, "takes": 1, "errors": 1, "connections": 1}
    assert stats["accepted"] == 1 and stats["bytes_in"] > 0 and stats["bytes_out"] > 0


def test_the_context_manager_and_close_end_the_connection(server: Server) -> None:
    with client(server) as c:
        assert not c.closed and repr(c) == f"<dipc.Client 127.0.0.1:{server.port} open>"
    assert c.closed and repr(c).endswith(" closed>")
    c.close()  # idempotent
    with pytest.raises(dipc.DipcConnectionError, match="closed"):
        c.read(0)
    with client(server) as observer:
        assert wait_until(lambda: observer.stats()["connections"] == 1, timeout=10), \
            "the server still counts the closed connection"


def test_close_from_another_thread_interrupts_a_waiting_take(server: Server) -> None:
    c = client(server, timeout=30)
    failures: List[BaseException] = []

    def take() -> None:
        try:
            c.take(2, wait_ms=60000)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=take)
    thread.start()
    assert wait_until(lambda: queued(server) == 1, timeout=10), "the take never started waiting"
    start = time.monotonic()
    c.close()
    thread.join(timeout=10)
    assert time.monotonic() - start < 10 and not thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], dipc.DipcConnectionError), failures
    assert "closed while waiting" in str(failures[0]) and c.closed
    assert wait_until(lambda: queued(server) == 0, timeout=10), "the server still holds the interrupted take"
    with client(server) as other:
        other.push(2, b"kept")
        assert other.take(2).data == b"kept", "the interrupted take took nothing"


def test_arguments_of_the_wrong_type_are_refused_before_sending(server: Server) -> None:
    with client(server) as c:
        with pytest.raises(TypeError):
            c.read("0 1 2")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            c.write(True, b"x")  # a bool is an int to mypy, not to the client
        with pytest.raises(TypeError):
            c.push(0, 42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            c.take(0, wait_ms=1.5)  # type: ignore[arg-type]
        assert c.stats()["reads"] == 0 and not c.closed, "nothing reached the server"


@pytest.mark.parametrize("backend", ["sysv", "posix", "tdb"])
def test_every_backend_serves_the_client(scope: Scope, backend: str) -> None:
    server = scope.start(backend)
    with client(server) as c:
        assert c.info()["backend"] == backend
        assert c.write(0, b"register") == 1
        assert c.push(1, b"job") == 1
        assert c.read(0) == dipc.Message(b"register", 1)
        assert c.take(1) == dipc.Message(b"job", 2)
