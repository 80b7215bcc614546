#!/usr/bin/env python3
"""Measures a dipc server under hostile load, as docs/HARDENING.md reports it.

  measure-bounds.py flood DIPC [--max-clients N] [--seconds S] [--flooders P]
      Starts DIPC --foreground with --max-clients N, then P processes connect as fast
      as they can for S seconds (each keeps up to 500 connections open, unread, closing
      the oldest); prints the server's peak threads and open descriptors (sampled from
      /proc every 10 ms) and how long a client waits to be served once the flood stops.

  measure-bounds.py staging DIPC [--writers W] [--write-mb M] [--mailbox-mb B] [--max-staging-mb S]
      Starts DIPC with W mailboxes of B MiB, then W clients each send a write of M MiB
      less 64 bytes and stall; prints the server's resident memory (VmRSS) before and at
      its peak, then finishes the writes and counts the acknowledgements.

DIPC is the path of a dipc binary; the server runs in a temporary DIPC_RUNTIME_DIR and
is stopped (SIGTERM) at the end.
"""
import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(dipc, args, port):
    env = dict(os.environ, DIPC_RUNTIME_DIR=tempfile.mkdtemp(prefix="dipc-measure-"))
    proc = subprocess.Popen([dipc, "--foreground", "--name", f"measure{port}"] + args,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    proc.stdout.readline()  # the start line: the server accepts connections
    return proc


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Peak threads, descriptors and VmRSS (KiB) of `pid`, every 10 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.threads, self.fds, self.rss, self.running = pid, 0, 0, 0, True

    def run(self):
        while self.running:
            try:
                self.threads = max(self.threads, status(self.pid, "Threads"))
                self.rss = max(self.rss, status(self.pid, "VmRSS"))
                self.fds = max(self.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            except OSError:
                return
            time.sleep(0.01)


def flooder(port, seconds):
    held = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            held.append(s)
        except OSError:
            pass
        if len(held) > 500:
            held.pop(0).close()
    for s in held:
        s.close()


def served(port):
    """Seconds until one `i` request is answered `ok`."""
    start = time.monotonic()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"i\n")
                if s.recv(256).startswith(b"ok"):
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.01)


def flood(a):
    port = free_port()
    server = start_server(a.dipc, ["--max-clients", str(a.max_clients), "4", "4", str(port), "4"], port)
    try:
        base = (status(server.pid, "Threads"), len(os.listdir(f"/proc/{server.pid}/fd")))
        sampler = Sampler(server.pid)
        sampler.start()
        procs = [multiprocessing.Process(target=flooder, args=(port, a.seconds)) for _ in range(a.flooders)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        wait = served(port)
        sampler.running = False
        sampler.join()
        print(f"flood: --max-clients {a.max_clients}, {a.flooders} flooders for {a.seconds} s: "
              f"threads {base[0]} -> peak {sampler.threads} (bound {a.max_clients + 32}), "
              f"descriptors {base[1]} -> peak {sampler.fds} (bound {a.max_clients + 64}), "
              f"served {wait:.2f} s after the flood")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


def staging(a):
    port = free_port()
    args = ["--io-timeout", "60"]
    if a.max_staging_mb:
        args += ["--max-staging-mb", str(a.max_staging_mb)]
    server = start_server(a.dipc, args + [str(a.writers), str(a.mailbox_mb * 1024), str(port), "64"], port)
    try:
        before = status(server.pid, "VmRSS")
        sampler = Sampler(server.pid)
        sampler.start()
        length = a.write_mb << 20
        conns = []
        for i in range(a.writers):
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            conns.append([s, f"w {i} {length}\n".encode() + bytes(length - 64), 0])
        deadline = time.monotonic() + a.stall
        while time.monotonic() < deadline:  # send what the server takes, then stall
            for c in conns:
                try:
                    c[2] += c[0].send(c[1][c[2]:c[2] + (1 << 20)])
                except BlockingIOError:
                    pass
            time.sleep(0.01)
        stalled_peak = sampler.rss
        replies = []

        def finish(c):  # concurrently: a waiting write proceeds only once earlier ones finish
            c[0].setblocking(True)
            c[0].settimeout(60)
            c[0].sendall(c[1][c[2]:] + bytes(64))
            replies.append(c[0].recv(64))

        finishers = [threading.Thread(target=finish, args=(c,)) for c in conns]
        for t in finishers:
            t.start()
        for t in finishers:
            t.join()
        acks = sum(r.startswith(b"ok") for r in replies)
        sampler.running = False
        sampler.join()
        print(f"staging: {a.writers} writes of {a.write_mb} MiB stalled, --max-staging-mb "
              f"{a.max_staging_mb or 'default'}: VmRSS {before // 1024} MiB -> peak while stalled "
              f"{stalled_peak // 1024} MiB; {acks}/{a.writers} acknowledged after the writers finished")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    f = sub.add_parser("flood")
    f.add_argument("dipc")
    f.add_argument("--max-clients", type=int, default=64)
    f.add_argument("--seconds", type=float, default=8)
    f.add_argument("--flooders", type=int, default=3)
    s = sub.add_parser("staging")
    s.add_argument("dipc")
    s.add_argument("--writers", type=int, default=8)
    s.add_argument("--write-mb", type=int, default=120)
    s.add_argument("--mailbox-mb", type=int, default=128)
    s.add_argument("--max-staging-mb", type=int, default=0)
    s.add_argument("--stall", type=float, default=5)
    a = p.parse_args()
    flood(a) if a.what == "flood" else staging(a)


if __name__ == "__main__":
    sys.exit(main())
