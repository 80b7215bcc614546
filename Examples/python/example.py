#!/usr/bin/env python3
"""Talks to a dipc server with Examples/python/dipc.py (needs 2 or more mailboxes).

    python3 Examples/python/example.py --port 7070
    python3 Examples/python/example.py --unix /run/dipc.sock --auth-file token
    python3 Examples/python/example.py --port 7070 --tls --tls-ca ca.pem [--tls-cert c.pem --tls-key c.key]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dipc import Client, DIPCError  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DIPC_PORT", "7070")))
    parser.add_argument("--unix", help="the server's Unix socket instead of TCP")
    parser.add_argument("--auth-file", help="send this file's token first (default: $DIPC_AUTH_FILE)")
    parser.add_argument("--tls", action="store_true", help="speak TLS, verifying the server")
    parser.add_argument("--tls-ca", help="the CA bundle that verifies the server")
    parser.add_argument("--tls-cert", help="a client certificate to present")
    parser.add_argument("--tls-key", help="the key of --tls-cert")
    args = parser.parse_args()
    access = dict(unix_path=args.unix, auth_file=args.auth_file, tls=args.tls, tls_ca=args.tls_ca,
                  tls_cert=args.tls_cert, tls_key=args.tls_key)

    with Client(args.host, args.port, timeout=10, **access) as c:
        info = c.info()
        print(f"server: backend={info['backend']} name={info['name']} mailboxes={info['mailboxes']}")

        # Mailbox 0 as a register: write, then read back.
        version = c.write(0, "hello from python")
        data, read_version = c.read(0)
        print(f"register: wrote version {version}, read {data.decode()!r} (version {read_version})")

        # Mailbox 1 as a queue: push three jobs, take them in order.
        for job in ("first", "second", "third"):
            c.push(1, job)
        taken = [c.consume(1)[0].decode() for _ in range(3)]
        print("queue: took " + ", ".join(taken))
        try:
            c.consume(1, wait_ms=100)
        except DIPCError as e:
            print(f"queue: now {e.code}")

        # Errors carry the server's code.
        try:
            c.read(int(info["mailboxes"]))
        except DIPCError as e:
            print(f"error: {e.code}")

        stats = c.stats()
        print(f"stats: reads={stats['reads']} writes={stats['writes']} pushes={stats['pushes']} takes={stats['takes']}")


if __name__ == "__main__":
    main()
