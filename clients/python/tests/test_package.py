"""What `pip install ./clients/python` installs (the suite runs on the installed copy)."""

from __future__ import annotations

import importlib.metadata
import os

import dipc


def test_the_installed_package_is_typed_and_has_no_dependencies() -> None:
    assert os.path.isfile(os.path.join(os.path.dirname(dipc.__file__), "py.typed")), "PEP 561 marker missing"
    assert importlib.metadata.version("dipc") == dipc.__version__, "pyproject.toml and __version__ disagree"
    assert importlib.metadata.requires("dipc") is None, "the package needs nothing beyond the standard library"


def test_every_name_in_all_exists() -> None:
    assert all(hasattr(dipc, name) for name in dipc.__all__)
    classes = [getattr(dipc, name) for name in dipc.__all__]
    codes = [c.expected_code for c in classes if isinstance(c, type) and issubclass(c, dipc.DipcError) and c.expected_code]
    assert sorted(codes) == sorted(
        ["syntax", "range", "size", "busy", "timeout", "shutdown", "full", "empty", "internal", "auth", "unavailable"]), \
        "one exception per error code of the protocol"
