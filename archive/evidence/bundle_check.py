"""``callrec verify-bundle case.zip``: what the bundle's README has a third party do with
``sha256sum`` and ``openssl``, done at once, reading the zip without extracting it (a hostile
zip cannot write outside anything). Needs no settings and no S3."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive.evidence.bundle_text import key_file
from callrec import CallrecError
from callrec.manifest import ChainLink
from callrec.signing import load_public, signature_ok

MAX_MEMBER = 16 << 20  # manifests, checkpoints, keys are small; recordings are streamed


@dataclass
class BundleReport:
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.checked)


def verify_bundle(path: Path) -> BundleReport:
    report = BundleReport()
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.problems.append(f"not a readable zip: {exc}")
        return report
    with zf:
        try:
            sums = _sums(zf, report)
            for name in sorted(sums):
                if name.startswith("calls/") and name.endswith(".json") and "/manifest.v" in name:
                    _manifest(zf, sums, name, report)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # a damaged member (CRC)
            report.problems.append(f"the zip is damaged: {exc}")
    return report


def _sums(zf: zipfile.ZipFile, report: BundleReport) -> dict[str, str]:
    """SHA256SUMS checked: every listed file has its digest, every file is listed."""
    try:
        listed = _small(zf, "SHA256SUMS").decode().splitlines()
    except (KeyError, UnicodeDecodeError, ValueError) as exc:
        report.problems.append(f"SHA256SUMS unreadable: {exc}")
        return {}
    sums = {}
    for line in listed:
        digest, _, name = line.partition("  ")
        sums[name] = digest
    names = {i.filename for i in zf.infolist() if not i.is_dir()} - {"SHA256SUMS"}
    for name in sorted(names - set(sums)):
        report.problems.append(f"{name}: not listed in SHA256SUMS")
    for name, digest in sorted(sums.items()):
        if name not in names:
            report.problems.append(f"{name}: listed in SHA256SUMS but absent")
        elif _digest(zf, name) != digest:
            report.problems.append(f"{name}: SHA-256 differs from SHA256SUMS")
    report.checked.append(f"SHA256SUMS: {len(sums)} file(s)")
    return {n: d for n, d in sums.items() if n in names}


def _manifest(zf: zipfile.ZipFile, sums: dict[str, str], name: str,
              report: BundleReport) -> None:
    data = _small(zf, name)
    try:
        doc = json.loads(data)
        link = ChainLink.model_validate(doc["chain"]) if doc.get("chain") else None
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"{name}: not a manifest ({exc})")
        return
    if link is None or name + ".sig" not in sums:
        report.problems.append(f"{name}: not signed")
        return
    if not _signed(zf, name, link.key, report):
        return
    folder = name.rsplit("/", 1)[0]
    rec = doc.get("recording") or {}
    # What this version names: the WAV's SHA-256, and the transcode's once it was archived.
    named = {"wav": rec.get("sha256")}
    archived = rec.get("archived")
    if isinstance(archived, dict):
        named[str(archived.get("format"))] = archived.get("sha256")
    for path in [n for n in sums if n.startswith(folder + "/recording")]:
        expected = named.get(path.rsplit(".", 1)[-1])
        if expected and sums[path] != expected:
            report.problems.append(f"{path}: SHA-256 differs from the signed manifest's")
    _listed(zf, sums, name, link, str(doc.get("call_id")), report)
    report.checked.append(f"{name}: signed by {link.key}, entry {link.seq} of {link.chain}")


def _listed(zf: zipfile.ZipFile, sums: dict[str, str], name: str, link: ChainLink,
            call_id: str, report: BundleReport) -> None:
    """The version is an entry of a signed checkpoint in the bundle."""
    entry = [link.seq, call_id, sums[name]]
    for cp in [n for n in sums if n.startswith(f"chain/{link.chain}/") and n.endswith(".json")]:
        body: dict[str, Any] = json.loads(_small(zf, cp))
        if entry in body.get("entries", []):
            if _signed(zf, cp, str(body.get("key", "")), report):
                return
    report.problems.append(f"{name}: listed in no signed checkpoint of the bundle")


def _signed(zf: zipfile.ZipFile, name: str, signer: str, report: BundleReport) -> bool:
    key = key_file(signer)
    try:
        public = load_public(_small(zf, key))
        signature = _small(zf, name + ".sig")
    except (KeyError, ValueError, CallrecError) as exc:
        report.problems.append(f"{name}: signature not checkable ({exc})")
        return False
    if not signature_ok(public, _small(zf, name), signature):
        report.problems.append(f"{name}: signature does not verify")
        return False
    return True


def _small(zf: zipfile.ZipFile, name: str) -> bytes:
    if zf.getinfo(name).file_size > MAX_MEMBER:
        raise ValueError(f"{name} is too large")
    return zf.read(name)


def _digest(zf: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with zf.open(name) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
