"""The PBX host's files that ship in the wheel (pyproject.toml maps the checkout's ``dialplan/``,
``sounds/`` and ``deploy/`` to ``callrec_cli.share.*``): read from the installed package, or,
when running from a checkout that was never built, from the checkout itself."""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

from callrec_cli.setup import SetupError

_CHECKOUT = Path(__file__).resolve().parents[2]
KINDS = ("dialplan", "sounds", "deploy")


def share(kind: str) -> Traversable:
    """The directory of one kind of shipped file."""
    if kind not in KINDS:
        raise ValueError(kind)
    try:
        return importlib.resources.files(f"callrec_cli.share.{kind}")
    except ModuleNotFoundError:
        local = _CHECKOUT / kind
        if not local.is_dir():
            raise SetupError(f"this callrec has no {kind} files (a broken install?)") from None
        return local


def walk(top: Traversable, prefix: str = "") -> list[tuple[str, bytes]]:
    """Every file under ``top`` as (relative path, bytes), sorted; Python files skipped (the
    prompt generator ships beside the prompts, it is not installed)."""
    found: list[tuple[str, bytes]] = []
    for entry in sorted(top.iterdir(), key=lambda e: e.name):
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            if entry.name != "__pycache__":
                found += walk(entry, f"{name}/")
        elif not entry.name.endswith((".py", ".pyc")):
            found.append((name, entry.read_bytes()))
    return found
