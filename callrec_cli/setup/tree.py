"""The host's file tree as setup sees it: every path is absolute as the PBX host names it, under
a ``root`` (``/`` on a real host; the bench's chroot in the tests, as ``useradd --root`` does).

Absolute symlinks resolve inside the root (Debian's ``sounds/en`` points into
``/etc/alternatives``, which from outside a chroot would be the outer system's)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from callrec_cli.setup import SetupError


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


class Tree:
    def __init__(self, root: Path) -> None:
        self.root = root

    def host(self, path: str, depth: int = 0) -> Path:
        """Where ``path`` (as the PBX host names it) is on this machine."""
        if depth > 20:
            raise SetupError(f"symlink loop under {path}")
        current = self.root
        parts = [p for p in path.split("/") if p]
        for index, part in enumerate(parts):
            candidate = current / part
            if candidate.is_symlink():
                link = os.readlink(candidate)
                rest = "/".join(parts[index + 1:])
                base = link if link.startswith("/") else \
                    "/" + os.path.relpath(os.path.normpath(current / link), self.root)
                return self.host(f"{base}/{rest}", depth + 1)
            current = candidate
        return current

    def read(self, path: str) -> bytes | None:
        try:
            return self.host(path).read_bytes()
        except FileNotFoundError:
            return None

    def _ids(self, table: str, name: str) -> tuple[int, int] | None:
        """(id, group id) of ``name`` in this root's /etc/passwd, or (gid, gid) in /etc/group."""
        text = (self.host(f"/etc/{table}").read_text(errors="replace")
                if self.host(f"/etc/{table}").exists() else "")
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == name:
                return int(fields[2]), int(fields[3] if table == "passwd" else fields[2])
        return None

    def user(self, name: str) -> tuple[int, int] | None:
        return self._ids("passwd", name)

    def owner(self, user: str, group: str) -> Owner:
        uid = self.user(user)
        gid = self._ids("group", group)
        if uid is None or gid is None:
            raise SetupError(f"no user {user!r} or group {group!r} on this host")
        return Owner(uid[0], gid[0])
