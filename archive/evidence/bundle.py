"""Evidence bundles: the calls handed to a lawyer, the police or a court, in one zip that a
third party checks with standard tools only (``sha256sum``, ``openssl``; README.txt, ja/en).

    README.txt                     what this is and the exact commands that check it
    SHA256SUMS                     every other file (``sha256sum -c SHA256SUMS``)
    index.json                     the calls, their versions and where each proof is
    calls/<id>/manifest.vN.json    every manifest version, exactly as archived
    calls/<id>/manifest.vN.json.sig  its Ed25519 signature (raw 64 bytes)
    calls/<id>/recording.<ext>     the recording, exactly as archived (wav; flac or opus when
                                   the uploader archived a transcode, and then the wav too if
                                   the original was kept)
    calls/<id>/object-lock.json    Object Lock retention and legal hold of every object version
    calls/<id>/audit.json          the archive's audit rows of the call (who listened, changed,
                                   held, exported)
    chain/<chain>/<checkpoint>.json (+ .sig)  the signed checkpoint listing each version
    keys/<host>_<key_id>.pem       the public keys of the signers

Building one reads the archive and changes nothing in it. Caller values are untrusted: they
appear only in index.json (JSON, ASCII-escaped) and in the manifests themselves, never in the
README's commands.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from archive.catalog import AuditRow
from archive.evidence.bundle_text import CallFiles, Proof, Recorded, key_file, readme
from archive.render import dumps
from archive.service import NotFound
from callrec.evidence.ledger import EvidenceLayout
from callrec.ids import call_id_time
from callrec.manifest import AudioFormat, ChainLink
from callrec.s3.layout import Layout
from callrec.s3.store import Store
from callrec.s3.versions import (
    ObjectVersion,
    get_version,
    list_versions,
    lock_state,
    oldest_first,
)
from callrec.signing import decode_sig, sha256_file, sha256_hex

CHECKPOINT_SCAN = 5000  # checkpoints read at most to find the one listing a version


class BundleError(NotFound):
    """Nothing to export (an unknown call): raised before the zip is written."""


class BundleWriter:
    def __init__(self, store: Store, layout: Layout, evidence_prefix: str,
                 audit_rows: Callable[[str], list[AuditRow]]) -> None:
        self.store, self.layout = store, layout
        self.ev = EvidenceLayout(evidence_prefix)
        self.audit_rows = audit_rows
        # Checkpoints read for this bundle (name -> body, metadata, parsed): calls of one day
        # search the same ones, so each is fetched once per bundle.
        self._read: dict[str, tuple[bytes, dict[str, str], dict[str, Any]] | None] = {}

    def write(self, call_ids: list[str], out: Path, exported_by: str) -> str:
        """The bundle of ``call_ids`` at ``out``; returns its SHA-256."""
        found = {c: self._versions(c) for c in dict.fromkeys(call_ids)}
        unknown = [c for c, (manifests, _) in found.items() if not manifests]
        if unknown:
            raise BundleError(f"not archived: {', '.join(unknown)}")
        sums: dict[str, str] = {}
        signers: set[str] = set()
        self._read = {}
        calls = []
        tmp = out.with_name(f".{out.name}.part")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for call_id, (manifests, wavs) in found.items():
                calls.append(self._call(zf, sums, signers, call_id, manifests, wavs))
            for signer in sorted(signers):
                pem = get_version(self.store, self.ev.key_object(signer))
                if pem is not None:
                    _add(zf, sums, key_file(signer), pem[0])
            index = {"exported_at": datetime.now(UTC).isoformat(), "exported_by": exported_by,
                     "calls": [c.index for c in calls]}
            _add(zf, sums, "index.json", dumps(index).encode())
            _add(zf, sums, "README.txt", readme(calls, exported_by).encode())
            zf.writestr("SHA256SUMS", "".join(f"{h}  {p}\n" for p, h in sorted(sums.items())))
        tmp.replace(out)
        return sha256_file(out)

    def _versions(self, call_id: str) -> tuple[list[ObjectVersion], list[ObjectVersion]]:
        """The manifest's versions, and every version of every recording object (by key)."""
        base = self.layout.base_of(call_id)
        listed = [v for v in list_versions(self.store, base + ".") if not v.delete_marker]
        audio = {f"{base}.{fmt.value}" for fmt in AudioFormat}
        return (oldest_first([v for v in listed if v.key == base + ".json"]),
                sorted(oldest_first([v for v in listed if v.key in audio]),
                       key=lambda v: v.key))

    def _call(self, zf: zipfile.ZipFile, sums: dict[str, str], signers: set[str],
              call_id: str, manifests: list[ObjectVersion],
              wavs: list[ObjectVersion]) -> CallFiles:
        files = CallFiles(call_id)
        folder = f"calls/{call_id}/"
        last: dict[str, Any] = {}
        docs: list[tuple[str, dict[str, Any]]] = []
        for n, v in enumerate(manifests, 1):
            got = get_version(self.store, v.key, v.version_id)
            if got is None:
                continue
            data, meta = got
            proof = Proof(f"{folder}manifest.v{n}.json", sha256_hex(data), None)
            _add(zf, sums, proof.manifest, data)
            try:  # kept as archived, whatever it holds; described only if it is a manifest
                last = json.loads(data)
                proof.link = ChainLink.model_validate(last["chain"]) \
                    if last.get("chain") else None
            except (ValueError, TypeError, AttributeError):
                last = {}
            docs.append((proof.manifest, last))
            if proof.link is not None:
                signers.add(proof.link.key)
            signature = decode_sig(meta.get("signature", ""))
            if signature is not None:
                proof.signature = proof.manifest + ".sig"
                _add(zf, sums, proof.signature, signature)
            if proof.link is not None:
                proof.checkpoint = self._checkpoint(zf, sums, signers, proof, call_id)
            files.proofs.append(proof)
        for key, versions in groupby(wavs, key=lambda v: v.key):
            found = list(versions)
            ext = key.rsplit(".", 1)[-1]
            expected, named_in = _named(ext, docs)
            for n, w in enumerate(found, 1):
                name = f"{folder}recording{'' if len(found) == 1 else f'.v{n}'}.{ext}"
                files.recordings.append(Recorded(name, self._recording(zf, sums, name, w),
                                                 expected, named_in))
        recording = last.get("recording") or {}
        played = recording.get("archived") or recording  # the object the archive plays
        files.recording_sha256 = str(played.get("sha256") or "") if isinstance(played, dict) \
            else ""
        locks = [{"key": v.key, "version_id": v.version_id,
                  **lock_state(self.store, v.key, v.version_id)} for v in manifests + wavs]
        _add(zf, sums, folder + "object-lock.json", dumps(locks).encode())
        audit = [r.fields() for r in self.audit_rows(call_id)]
        _add(zf, sums, folder + "audit.json", dumps(audit).encode())
        caller = last.get("caller") or {}
        files.index = {
            "call_id": call_id, "entered_at": last.get("entered_at"),
            "caller_number_raw": caller.get("number_raw", ""),
            "caller_name_raw": caller.get("name_raw", ""), "status": last.get("status"),
            "outcome": last.get("outcome"), "recording_sha256": files.recording_sha256,
            "recordings": [r.path for r in files.recordings],
            "versions": [{"manifest": p.manifest, "sha256": p.sha256,
                          "signature": p.signature, "checkpoint": p.checkpoint,
                          "chain": p.link.model_dump() if p.link else None}
                         for p in files.proofs]}
        return files

    def _recording(self, zf: zipfile.ZipFile, sums: dict[str, str], name: str,
                   v: ObjectVersion) -> str:
        """Streamed from S3 into the zip (a recording may be hours long), hashed on the way."""
        with zf.open(zipfile.ZipInfo(name, _zip_time()), "w", force_zip64=True) as out:
            sums[name] = self.store.download(v.key, out, version_id=v.version_id)
        return sums[name]

    def _checkpoint(self, zf: zipfile.ZipFile, sums: dict[str, str], signers: set[str],
                    proof: Proof, call_id: str) -> str:
        """The first checkpoint of the version's chain that lists it ("" if none does yet)."""
        assert proof.link is not None
        chain = proof.link.chain
        for n, name in enumerate(self._checkpoints_from(chain, call_id_time(call_id).date())):
            if n >= CHECKPOINT_SCAN:
                break
            got = self._checkpoint_at(name)
            if got is None:
                continue
            data, meta, body = got
            if [proof.link.seq, call_id, proof.sha256] in body.get("entries", []):
                path = f"chain/{chain}/{name.rsplit('/', 1)[-1]}"
                if path not in sums:
                    _add(zf, sums, path, data)
                    signature = decode_sig(meta.get("signature", ""))
                    if signature is not None:
                        _add(zf, sums, path + ".sig", signature)
                proof.checkpoint_key = str(body.get("key", ""))
                signers.add(proof.checkpoint_key)
                return path
        return ""

    def _checkpoint_at(self, name: str) -> tuple[bytes, dict[str, str], dict[str, Any]] | None:
        if name not in self._read:
            got = get_version(self.store, name)
            try:
                self._read[name] = (got[0], got[1], dict(json.loads(got[0]))) if got else None
            except (ValueError, TypeError):
                self._read[name] = None  # not a checkpoint: it lists nothing
        return self._read[name]

    def _checkpoints_from(self, chain: str, day: date) -> Iterator[str]:
        start = self.ev.chain_day(chain, day)
        for name, _ in self.store.list_keys(f"{self.ev.chains}{chain}/", start):
            yield name


def _named(ext: str, docs: list[tuple[str, dict[str, Any]]]) -> tuple[str, str]:
    """The SHA-256 the newest manifest version gives the recording object ``ext`` and the
    first version that names it (a transcode is named by the version the uploader wrote after
    the call flow's; the WAV by the first). ("", "") if none does."""
    def named(doc: dict[str, Any]) -> str:
        rec = doc.get("recording")
        if not isinstance(rec, dict):
            return ""
        if ext == AudioFormat.WAV.value:
            return str(rec.get("sha256") or "")
        archived = rec.get("archived")
        if isinstance(archived, dict) and archived.get("format") == ext:
            return str(archived.get("sha256") or "")
        return ""

    expected = named(docs[-1][1]) if docs else ""
    first = next((path for path, doc in docs if expected and named(doc) == expected), "")
    return expected, first


def _add(zf: zipfile.ZipFile, sums: dict[str, str], name: str, data: bytes) -> None:
    zf.writestr(zipfile.ZipInfo(name, _zip_time()), data, zipfile.ZIP_DEFLATED)
    sums[name] = sha256_hex(data)


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = datetime.now(UTC)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)
