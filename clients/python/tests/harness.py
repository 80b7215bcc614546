"""Real dipc servers for the tests: the built binaries, free ports, a private
DIPC_RUNTIME_DIR/DIPC_STATE_DIR per test, and a cleanup that stops and removes only
what the test made (servers by `dipcrm`, then leftover processes and IPC objects of its
own store names).

The binaries come from $DIPC_BIN (a directory), else the repository's .build/debug
(`swift build`)."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
_names = itertools.count(1)
_ports_handed_out: Set[int] = set()


def binaries_directory() -> Path:
    """Where dipc, dipcrm live ($DIPC_BIN, else .build/debug of the repository)."""
    return Path(os.environ.get("DIPC_BIN") or REPOSITORY_ROOT / ".build" / "debug")


def binary(name: str) -> str:
    path = binaries_directory() / name
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build the products first (swift build) or point DIPC_BIN at them")
    return str(path)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Polls `condition` until it holds or `timeout` seconds passed; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago, never handed out twice by this
    process (10000-19999: away from the Swift suite's 20000-32767 and the ephemeral range)."""
    for _ in range(1000):
        port = random.randrange(10000, 20000)
        if port in _ports_handed_out:
            continue
        _ports_handed_out.add(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 10000-19999")


def sysv_key(name: str) -> int:
    """The System V key of store `name` (FNV-1a 32 of "dipc:" + name, docs/CONVENTIONS.md)."""
    h = 2166136261
    for b in ("dipc:" + name).encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def sysv_objects(name: str) -> List[Tuple[str, int]]:
    """(kind "m"/"s", id) of the System V segments and semaphore sets of store `name`."""
    key = sysv_key(name)
    found: List[Tuple[str, int]] = []
    for kind, table in (("m", "/proc/sysvipc/shm"), ("s", "/proc/sysvipc/sem")):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 2 and int(fields[0]) & 0xFFFFFFFF == key:
                found.append((kind, int(fields[1])))
    return found


def _start_time(pid: int) -> Optional[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 overall


class Server:
    """A started server: its port, store name, runtime record and start-up line."""

    def __init__(self, port: int, name: str, backend: str, record: Dict[str, str], start_line: str) -> None:
        self.port = port
        self.name = name
        self.backend = backend
        self.record = record
        self.start_line = start_line

    @property
    def pid(self) -> int:
        return int(self.record["pid"])


class Scope:
    """One test's private world: a temporary directory with DIPC_RUNTIME_DIR and
    DIPC_STATE_DIR, unique store names, and the servers started in it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.runtime_dir = directory / "run"
        self.state_dir = directory / "state"
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env["DIPC_RUNTIME_DIR"] = str(self.runtime_dir)
        self.env["DIPC_STATE_DIR"] = str(self.state_dir)
        self.env.pop("DIPC_AUTH_FILE", None)
        self.names: List[str] = []
        self.servers: List[Server] = []
        self._known: List[Tuple[int, Optional[str]]] = []

    def new_name(self) -> str:
        name = f"py{os.getpid()}n{next(_names):04d}"
        self.names.append(name)
        return name

    def record(self, port: int) -> Optional[Dict[str, str]]:
        try:
            text = (self.runtime_dir / f"dipc-{port}.record").read_text()
        except OSError:
            return None
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def secret_file(self, name: str, content: str) -> str:
        """A file only its owner can read (what `--auth-file` requires)."""
        path = self.dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        return str(path)

    def start(
        self,
        backend: str = "sysv",
        options: Sequence[str] = (),
        mailboxes: int = 4,
        mailbox_kb: int = 4,
        packet_kb: int = 1,
        name: Optional[str] = None,
    ) -> Server:
        """Starts `dipc` (detaching) and requires success: exit 0 and a runtime record."""
        name = name or self.new_name()
        for _ in range(5):
            port = free_port()
            args = [binary("dipc"), "--backend", backend, "--name", name, *options,
                    str(mailboxes), str(mailbox_kb), str(port), str(packet_kb)]
            result = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=START_TIMEOUT)
            if result.returncode != 0 and "already in use" in result.stderr:
                continue  # another process took the port since free_port() looked
            record = self.record(port)
            if record is not None and "pid" in record:
                self._known.append((int(record["pid"]), record.get("start_time")))
            if result.returncode != 0:
                raise RuntimeError(f"dipc {' '.join(args[1:])} exited {result.returncode}: {result.stderr.strip()}")
            if record is None or "pid" not in record:
                raise RuntimeError(f"dipc exited 0 but left no runtime record for port {port}")
            server = Server(port, name, backend, record, result.stdout.strip())
            self.servers.append(server)
            return server
        raise RuntimeError("no free port stayed free long enough to start dipc")

    def dipcrm(self, port: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary("dipcrm"), str(port)], env=self.env, capture_output=True, text=True,
                              timeout=STOP_TIMEOUT)

    def recorded_ports(self) -> List[int]:
        ports = []
        for entry in os.listdir(self.runtime_dir) if self.runtime_dir.is_dir() else []:
            if entry.startswith("dipc-") and entry.endswith(".record"):
                digits = entry[len("dipc-"):-len(".record")].split(".")[0]
                if digits.isdigit():
                    ports.append(int(digits))
        return ports

    def cleanup(self) -> List[str]:
        """Stops every server of this scope and removes its stores and directory; returns
        what had to be removed by force (empty when dipcrm did everything)."""
        forced: List[str] = []
        for port in sorted(set(self.recorded_ports()) | {s.port for s in self.servers}):
            record = self.record(port)
            if record is not None:
                self._known.append((int(record.get("pid", "0") or 0), record.get("start_time")))
                try:
                    self.dipcrm(port)
                except subprocess.TimeoutExpired:
                    forced.append(f"dipcrm {port} timed out")
        known = {(pid, start) for pid, start in self._known if pid > 0 and start is not None}

        def alive() -> Set[Tuple[int, Optional[str]]]:
            return {(pid, start) for pid, start in known if _start_time(pid) == start}

        wait_until(lambda: not alive(), timeout=10)  # dipcrm may return while the process exits
        for pid, _ in alive():
            forced.append(f"process {pid}")
            os.kill(pid, signal.SIGKILL)
        for name in self.names:
            for kind, ident in sysv_objects(name):
                forced.append(f"sysv {kind} {ident} of {name}")
                subprocess.run(["ipcrm", f"-{kind}", str(ident)], capture_output=True, timeout=10)
            shm = Path("/dev/shm")
            for entry in shm.iterdir() if shm.is_dir() else []:
                if name in entry.name:
                    forced.append(f"{entry}")
                    entry.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        return forced


def make_certificates(directory: Path) -> Dict[str, str]:
    """With the openssl CLI (EC P-256, valid two days): a CA; a server certificate it
    signs for IP:127.0.0.1 and DNS:localhost; a client certificate it signs; an
    unrelated CA with a client certificate of its own ("foreign"). Paths by name."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=30)

    def make_ca(name: str, cn: str) -> None:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}")

    def make_signed(name: str, cn: str, ca: str, extensions: str) -> None:
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        (directory / f"{name}.ext").write_text(extensions + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")

    make_ca("ca", "dipc python test CA")
    make_ca("other-ca", "unrelated test CA")
    make_signed("server", "127.0.0.1", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    make_signed("client", "dipc python test client", "ca", "extendedKeyUsage=clientAuth")
    make_signed("foreign", "foreign client", "other-ca", "extendedKeyUsage=clientAuth")
    for key in directory.glob("*.key"):
        key.chmod(0o600)
    paths = {name: str(directory / f"{name}.pem") for name in ("ca", "other-ca", "server", "client", "foreign")}
    paths.update({f"{name}-key": str(directory / f"{name}.key") for name in ("server", "client", "foreign")})
    return paths
