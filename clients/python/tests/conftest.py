"""Fixtures: `scope` (a private runtime world, always cleaned up), `server` (a sysv
server of 4 mailboxes of 4 KiB, 1 KiB packets), `certificates` (made with openssl)."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Iterator

import pytest

from harness import Scope, Server, binaries_directory, make_certificates


def pytest_configure(config: pytest.Config) -> None:
    for name in ("dipc", "dipcrm"):
        if not (binaries_directory() / name).is_file():
            raise pytest.UsageError(
                f"{binaries_directory() / name} is missing: these tests need the built servers "
                "(swift build, or DIPC_BIN=DIR); they are never skipped")
    if shutil.which("openssl") is None:
        raise pytest.UsageError("the openssl CLI is missing (apt-get install openssl): the TLS tests need it")


@pytest.fixture
def scope(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scope]:
    monkeypatch.delenv("DIPC_AUTH_FILE", raising=False)
    the_scope = Scope(Path(tempfile.mkdtemp(prefix="dipc-py-")))
    try:
        yield the_scope
    finally:
        forced = the_scope.cleanup()
        if forced:
            warnings.warn(f"dipcrm left these behind; removed by force: {', '.join(forced)}")


@pytest.fixture
def server(scope: Scope) -> Server:
    return scope.start("sysv")


@pytest.fixture
def certificates(scope: Scope) -> Dict[str, str]:
    return make_certificates(scope.dir / "tls")
