"""Examples/python/example.py, which imports this package, against a real server."""

from __future__ import annotations

import subprocess
import sys

from harness import REPOSITORY_ROOT, Server


def test_example_runs_against_a_server(server: Server) -> None:
    result = subprocess.run([sys.executable, str(REPOSITORY_ROOT / "Examples" / "python" / "example.py"),
                             "--port", str(server.port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"server: backend=sysv name={server.name} mailboxes=4",
        "register: wrote version 1, read 'hello from python' (version 1)",
        "queue: took first, second, third",
        "queue: now empty",
        "error: range",
        "stats: reads=1 writes=1 pushes=3 takes=3",
    ]
