"""Build and cache the Debian sid chroot that holds Asterisk 22.

Debian bookworm has no ``asterisk`` package and installing sid's on the host would upgrade libc and
hundreds of packages, so the PBX lives in a ``debootstrap`` chroot. It shares the host's network
namespace, so Asterisk inside listens on the host's loopback.

The chroot is cached outside the work tree (``CALLREC_SANDBOX_CACHE``, default
``/var/cache/callrec/sandbox``) under a name derived from its inputs, and rebuilt only when they
change. Configuration is *not* baked in: it is rendered from the repo at every start.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from testbench import BenchError

log = logging.getLogger(__name__)

SUITE = "sid"
PACKAGES = ("asterisk", "asterisk-core-sounds-en")
# Bump when the build recipe changes in a way the inputs above do not show.
RECIPE = 1
# sid's Release file is past its Valid-Until date on the mirrors this bench reaches.
APT_OPTS = ("-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Check-Date=false")
DEFAULT_CACHE = Path("/var/cache/callrec/sandbox")


def cache_dir() -> Path:
    return Path(os.environ.get("CALLREC_SANDBOX_CACHE", str(DEFAULT_CACHE)))


def inputs_digest() -> str:
    inputs = {"suite": SUITE, "packages": sorted(PACKAGES), "recipe": RECIPE}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def chroot_path() -> Path:
    return cache_dir() / f"chroot-{inputs_digest()}"


def host_debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt already uses (override: ``CALLREC_SANDBOX_MIRROR``)."""
    override = os.environ.get("CALLREC_SANDBOX_MIRROR")
    if override:
        return override
    candidates: list[str] = []
    sources = apt_dir / "sources.list.d"
    files = sorted(sources.glob("*.sources")) + sorted(sources.glob("*.list"))
    files.append(apt_dir / "sources.list")
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        candidates += re.findall(r"^URIs:\s*(\S+)", text, flags=re.MULTILINE)
        candidates += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.MULTILINE)
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):  # not debian-security, not third-party repos
            return uri
    raise BenchError(
        "no Debian mirror found in /etc/apt sources; set CALLREC_SANDBOX_MIRROR to one"
    )


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise BenchError(
            f"{what} needs root (debootstrap, chroot and Asterisk's -U/-G); run it as root or "
            "with sudo"
        )


def _run(argv: list[str], what: str, log_path: Path) -> None:
    with log_path.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise BenchError(f"{what} failed (exit {result.returncode}); see {log_path}:\n{tail}")


def _build(target: Path, log_path: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise BenchError("debootstrap is not installed: apt-get install debootstrap")
    mirror = host_debian_mirror()
    started = time.monotonic()
    _run(["debootstrap", "--variant=minbase", "--include=ca-certificates", SUITE, str(target),
          mirror], "debootstrap", log_path)
    _run(["chroot", str(target), "apt-get", *APT_OPTS, "update"], "apt-get update (chroot)",
         log_path)
    _run(["chroot", str(target), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", *APT_OPTS,
          "install", "-y", "--no-install-recommends", *PACKAGES], "apt-get install (chroot)",
         log_path)
    _run(["chroot", str(target), "apt-get", "clean"], "apt-get clean (chroot)", log_path)
    log.info("sandbox chroot built in %.1f s", time.monotonic() - started)


def ensure_chroot() -> Path:
    """Return the cached chroot, building it first if its inputs changed or it is missing."""
    target = chroot_path()
    if (target / ".callrec-complete").exists():
        return target
    require_root("building the sandbox chroot")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel build (demo + tests) waits for this one
        if (target / ".callrec-complete").exists():
            return target
        partial = cache / f"{target.name}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        log_path = cache / f"{target.name}.build.log"
        log_path.unlink(missing_ok=True)
        log.info("building the sandbox chroot in %s (about 35 s; log: %s)", target, log_path)
        try:
            _build(partial, log_path)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        (partial / ".callrec-complete").write_text(inputs_digest())
        partial.rename(target)
        _remove_stale(cache, keep=target)
    return target


def _remove_stale(cache: Path, keep: Path) -> None:
    for old in cache.glob("chroot-*"):
        if old != keep and old.is_dir() and not old.name.endswith(".partial"):
            log.info("removing outdated sandbox chroot %s", old)
            shutil.rmtree(old, ignore_errors=True)


def chroot_user(root: Path, name: str) -> tuple[int, int]:
    """uid/gid of ``name`` inside the chroot (it may differ from the host's)."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise BenchError(f"user {name!r} missing in chroot {root}")
