"""Tokens for servers started with `--auth-file` (docs/PROTOCOL.md, "Access")."""

from __future__ import annotations

import os
from typing import Optional, Union

__all__ = ["read_token", "check_token", "AUTH_FILE_VARIABLE"]

#: The environment variable naming an auth file when none is given.
AUTH_FILE_VARIABLE = "DIPC_AUTH_FILE"

StrPath = Union[str, "os.PathLike[str]"]


def check_token(token: Union[str, bytes]) -> bytes:
    """The token as bytes, if it has the shape the server accepts: 16-200 visible
    ASCII characters (0x21-0x7e). Raises ValueError otherwise (never quoting it)."""
    raw = token.encode("ascii", "replace") if isinstance(token, str) else bytes(token)
    if not 16 <= len(raw) <= 200 or any(b < 0x21 or b > 0x7E for b in raw):
        raise ValueError("a dipc token is 16-200 visible ASCII characters (0x21-0x7e)")
    return raw


def read_token(path: StrPath) -> bytes:
    """The token of an auth file: its first line without its `\\n` (and a `\\r` before
    it). Raises OSError when the file cannot be read, ValueError when that line is not
    a token (the message names the file, never its content)."""
    with open(path, "rb") as f:
        line = f.readline(256).rstrip(b"\n")
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        return check_token(line)
    except ValueError:
        raise ValueError(f"auth file {os.fspath(path)}: its first line must be 16-200 visible ASCII characters") from None


def token_from_options(token: Optional[Union[str, bytes]], auth_file: Optional[StrPath]) -> Optional[bytes]:
    """The token a new client presents: `token`, else `auth_file`'s, else the file named
    by $DIPC_AUTH_FILE (when set and not empty), else None. Both given: ValueError."""
    if token is not None and auth_file is not None:
        raise ValueError("give either token or auth_file, not both")
    if token is not None:
        return check_token(token)
    path: Optional[StrPath] = auth_file if auth_file is not None else (os.environ.get(AUTH_FILE_VARIABLE) or None)
    return read_token(path) if path is not None else None
