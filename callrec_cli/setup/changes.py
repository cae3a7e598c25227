"""What setup changes, done, shown as a diff, and undone, with a state file that remembers it.

Three kinds of change: a file of callrec's own (created, or an earlier one replaced), one line
added to an admin's file (an include), a directory. A file that existed is backed up, bytes and
mode and owner, before the first change; ``undo`` restores it when it still holds what setup
wrote, and otherwise (the admin edited it since) removes only setup's line."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec_cli.setup import SetupError
from callrec_cli.setup.tree import Tree

log = logging.getLogger(__name__)

STATE_DIR = "/var/lib/callrec/setup"


@dataclass(frozen=True)
class File:
    path: str
    data: bytes
    mode: int = 0o644
    user: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class Line:
    """One line in an admin's file (created empty if missing, as FreePBX's *_custom.conf)."""

    path: str
    line: str
    mode: int = 0o644
    user: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class Dir:
    path: str
    mode: int = 0o755
    user: str = "root"
    group: str = "root"


Change = File | Line | Dir


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def with_line(current: bytes | None, line: str) -> bytes | None:
    """``current`` with ``line`` appended, or None when it holds the line already."""
    text = current or b""
    if line.encode() in text.splitlines():
        return None
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return text + line.encode() + b"\n"


class State:
    """The state file: each path setup touched, in order, and the backups of changed files."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.dir = tree.host(STATE_DIR)
        self.entries: dict[str, dict[str, Any]] = {}
        path = self.dir / "state.json"
        if path.exists():
            try:
                self.entries = {e["path"]: e for e in json.loads(path.read_text())["entries"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise SetupError(f"{path} is not setup's state file: {exc}") from exc

    def save(self) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps({"version": 1, "entries": list(self.entries.values())},
                                  indent=1))
        tmp.chmod(0o600)
        os.replace(tmp, self.dir / "state.json")

    def backup(self, path: str, host: Path) -> dict[str, Any]:
        data = host.read_bytes()
        st = host.stat()
        (self.dir / _sha(data)).write_bytes(data)
        (self.dir / _sha(data)).chmod(0o600)
        return {"path": path, "kind": "changed", "orig": _sha(data),
                "mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid}

    def original(self, entry: dict[str, Any]) -> bytes:
        return (self.dir / str(entry["orig"])).read_bytes()


class Applier:
    """Makes the changes, in order, recording each before the next."""

    def __init__(self, tree: Tree, state: State) -> None:
        self.tree, self.state = tree, state
        self.done: list[str] = []

    def apply(self, changes: Sequence[Change]) -> list[str]:
        self.begin()
        for change in changes:
            if isinstance(change, Dir):
                self._dir(change.path, change)
            elif isinstance(change, Line):
                data = with_line(self.tree.read(change.path), change.line)
                if data is not None:
                    self._write(change.path, data, change, line=change.line)
            else:
                self._write(change.path, change.data, change)
        return self.done

    def begin(self) -> None:
        """The state dir and the parents it needs, recorded once it exists to record in (undo
        removes them after the state dir itself)."""
        parts = STATE_DIR.strip("/").split("/")
        made = []
        for depth in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:depth])
            host = self.tree.host(path)
            if not host.is_dir():
                host.mkdir(mode=0o700 if path == STATE_DIR else 0o755)
                made.append(path)
        for path in made:
            if path != STATE_DIR:
                self.state.entries.setdefault(path, {"path": path, "kind": "dir"})
        self.state.save()

    def _parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent != "/" and not self.tree.host(parent).exists():
            self._dir(parent, Dir(parent))

    def _dir(self, path: str, spec: Dir) -> None:
        host = self.tree.host(path)
        if host.is_dir():
            return
        self._parents(path)
        host.mkdir(mode=spec.mode)
        self._own(host, spec)
        self.state.entries[path] = {"path": path, "kind": "dir"}
        self.state.save()
        self.done.append(f"created {path}/")

    def _write(self, path: str, data: bytes, spec: File | Line, line: str | None = None) -> None:
        host = self.tree.host(path)
        owner = self.tree.owner(spec.user, spec.group)
        if host.exists():
            st = host.stat()
            if host.read_bytes() == data and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (
                    spec.mode, owner.uid, owner.gid):
                return
            entry = self.state.entries.get(path) or self.state.backup(path, host)
        else:
            self._parents(path)
            entry = self.state.entries.get(path) or {"path": path, "kind": "created"}
        entry.update(sha256=_sha(data), **({"line": line} if line else {}))
        self.state.entries[path] = entry
        self.state.save()  # write-ahead: a crash here still lets --undo restore the original
        tmp = host.with_name(f".{host.name}.callrec-setup")
        tmp.write_bytes(data)
        self._own(tmp, spec)
        os.replace(tmp, host)
        self.done.append(f"{'added a line to' if line else 'wrote'} {path}")

    def _own(self, host: Path, spec: File | Line | Dir) -> None:
        owner = self.tree.owner(spec.user, spec.group)
        os.chown(host, owner.uid, owner.gid)
        host.chmod(spec.mode)


def undo(tree: Tree, state: State) -> tuple[list[str], list[str]]:
    """Put back what setup changed; returns (what was done, what was left and why)."""
    done: list[str] = []
    kept: list[str] = []
    above_state: list[Path] = []
    for entry in reversed(list(state.entries.values())):
        path = str(entry["path"])
        if entry["kind"] == "user":
            continue  # the command removes it (userdel), after the files
        if entry["kind"] == "dir" and STATE_DIR.startswith(path + "/"):
            above_state.append(tree.host(path))  # removed after the state dir itself, below
        elif entry["kind"] == "dir":
            _rmdir(tree.host(path), path, done, kept)
        else:
            _undo_file(tree, state, entry, done, kept)
    for name in [p.name for p in state.dir.glob("*")]:
        (state.dir / name).unlink()
    state.dir.rmdir()
    for host in above_state:
        _rmdir(host, str(host), [], kept)
    return done, kept


def _rmdir(host: Path, path: str, done: list[str], kept: list[str]) -> None:
    try:
        host.rmdir()
        done.append(f"removed {path}/")
    except FileNotFoundError:
        pass
    except OSError:
        kept.append(f"{path}/ (not empty: holds files setup did not write)")


def _undo_file(tree: Tree, state: State, entry: dict[str, Any], done: list[str],
               kept: list[str]) -> None:
    path = str(entry["path"])
    host = tree.host(path)
    current = tree.read(path)
    if current is None:
        return
    ours = _sha(current) == entry.get("sha256")
    if entry["kind"] == "created" and ours:
        host.unlink()
        done.append(f"removed {path}")
    elif entry["kind"] == "changed" and ours:
        _restore(host, state.original(entry), entry)
        done.append(f"restored {path}")
    elif entry["kind"] == "changed" and entry.get("line"):
        lines = current.splitlines(keepends=True)
        rest = [x for x in lines if x.rstrip(b"\r\n") != str(entry["line"]).encode()]
        host.write_bytes(b"".join(rest))
        done.append(f"removed setup's line from {path} (edited since setup)")
    else:
        kept.append(f"{path} (changed since setup wrote it)")


def _restore(host: Path, data: bytes, entry: dict[str, Any]) -> None:
    tmp = host.with_name(f".{host.name}.callrec-setup")
    tmp.write_bytes(data)
    os.chown(tmp, int(entry["uid"]), int(entry["gid"]))
    tmp.chmod(int(entry["mode"]))
    os.replace(tmp, host)


def diff(tree: Tree, changes: Iterable[Change], secrets: Sequence[str]) -> str:
    """The whole change as a unified diff (directories as comments), secrets masked."""
    out: list[str] = []
    pending: dict[str, bytes | None] = {}
    for change in changes:
        if isinstance(change, Dir):
            if not tree.host(change.path).is_dir():
                out.append(f"# mkdir -m {change.mode:o} {change.path} "
                           f"({change.user}:{change.group})\n")
            continue
        old = pending.get(change.path, tree.read(change.path))
        new = with_line(old, change.line) if isinstance(change, Line) else change.data
        if new is None or new == old:
            continue
        pending[change.path] = new
        out += _unified(change.path, old, new)
    text = "".join(out)
    for secret in secrets:
        text = text.replace(secret, "********")
    # And the admin's own passwords in the diff's context lines.
    return re.sub(r"^([ +-]\s*(?:password|secret)\s*=\s*)\S+", r"\1********", text,
                  flags=re.MULTILINE | re.IGNORECASE)


def _unified(path: str, old: bytes | None, new: bytes) -> list[str]:
    try:
        before = [] if old is None else old.decode().splitlines(keepends=True)
        after = new.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return [f"# {'replace' if old else 'create'} {path} ({len(new)} bytes)\n"]
    lines = list(difflib.unified_diff(before, after, "/dev/null" if old is None else path,
                                      path))
    return [x if x.endswith("\n") else x + "\n" for x in lines]
