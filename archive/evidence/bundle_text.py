"""The evidence bundle's README (Japanese, then English): what it holds and the exact commands
that check it with standard tools only. Every command line starts with ``$ `` and is meant to be
run as written, in the folder the zip was extracted to; each exits non-zero if its check fails.

Only values callrec made or checked appear here (call ids, hex digests, file names of keys and
checkpoints): never a caller's number or name, which a hostile caller chooses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callrec.manifest import ChainLink

HEAD_JA = """\
callrec 証拠パッケージ
======================

この zip には、通話の録音と、それを説明するマニフェスト(通話記録)を、アーカイブ
(S3 互換ストレージ、Object Lock で保護)に保管されているとおりのバイト列で収めています。
各マニフェストは録音ホストの Ed25519 鍵で署名されており、マニフェストには録音の SHA-256
が含まれるため、署名は録音そのものも保護します。各マニフェストは、ホストごとのハッシュ
チェーンに記録され、署名付きチェックポイント(chain/)に掲載されています。

確認に必要なのは標準的なツール(sha256sum、OpenSSL 3.0 以降の openssl)だけです。
zip を展開したフォルダで、以下のコマンドをそのまま実行してください。すべてのコマンドが
エラーなく終了すれば(終了コード 0)、内容は改ざんされていません。どれか一つでも失敗した
場合、そのファイルは保管時のものと異なります。

ファイル:
  SHA256SUMS                    他のすべてのファイルの SHA-256
  index.json                    通話の一覧(発信者番号・名前は受信したままの値です)
  calls/<通話ID>/manifest.vN.json  マニフェストの各版(v1 が通話終了時のもの)
  calls/<通話ID>/*.sig          その署名(64 バイト)
  calls/<通話ID>/recording.wav  録音
  calls/<通話ID>/object-lock.json  保管期間(Object Lock)とリーガルホールドの状態
  calls/<通話ID>/audit.json     監査ログ(誰がいつ再生・変更・保全・出力したか)
  chain/                        署名付きチェックポイント
  keys/                         署名に使われた公開鍵
"""

HEAD_EN = """\
callrec evidence bundle
=======================

This zip holds call recordings and the manifests that describe them, byte for byte as they are
kept in the archive (S3-compatible storage under Object Lock). Each manifest is signed with the
recording host's Ed25519 key; the manifest contains the recording's SHA-256, so the signature
protects the recording too. Each manifest is an entry of its host's hash chain and is listed in
a signed checkpoint (chain/).

Checking it needs standard tools only: sha256sum and openssl (OpenSSL 3.0 or later). Run the
commands below exactly as written, in the folder the zip was extracted to. If every command
ends without error (exit code 0), nothing was altered; if any fails, that file is not what the
archive holds.

Files: SHA256SUMS (every other file), index.json (the calls; caller numbers and names exactly as
received), calls/<call id>/manifest.vN.json (every version; v1 is the one written at hang-up)
and its .sig, recording.wav, object-lock.json (retention and legal hold), audit.json (who
listened, changed, held or exported, and when), chain/ (signed checkpoints), keys/ (public keys).
"""


@dataclass
class Proof:
    """What the README's commands check for one manifest version."""

    manifest: str
    sha256: str
    link: ChainLink | None
    signature: str = ""
    checkpoint: str = ""
    checkpoint_key: str = ""  # its signer (the host's key when it was written)


@dataclass(frozen=True)
class Recorded:
    """A recording file of the bundle: its SHA-256, the one the newest manifest version gives
    it, and the first version that names it ("": none)."""

    path: str
    sha256: str
    expected: str
    named_in: str


@dataclass
class CallFiles:
    call_id: str
    proofs: list[Proof] = field(default_factory=list)
    recordings: list[Recorded] = field(default_factory=list)
    recording_sha256: str = ""
    index: dict[str, Any] = field(default_factory=dict)


def key_file(signer: str) -> str:
    """``host/key_id`` -> the bundle's file of that public key."""
    return "keys/" + signer.replace("/", "_") + ".pem"


def readme(calls: list[CallFiles], exported_by: str) -> str:
    lines = [HEAD_JA, "", HEAD_EN, "", f"Exported by / 出力者: {_plain(exported_by)}", "",
             "Commands / 確認コマンド", "------------------------", "",
             "# 1. Every file is the one listed / すべてのファイルが一覧どおりであること",
             "$ sha256sum -c SHA256SUMS", ""]
    for files in calls:
        lines += _call_commands(files)
    return "\n".join(lines) + "\n"


def _call_commands(files: CallFiles) -> list[str]:
    lines = [f"# Call / 通話 {files.call_id}"]
    for proof in files.proofs:
        if not proof.signature or proof.link is None:
            lines.append(f"# {proof.manifest}: NOT SIGNED (archived before sealing) / 署名なし")
            continue
        key = key_file(proof.link.key)
        lines += [f"# {proof.manifest}: signature / 署名 ({proof.link.key})",
                  f"$ openssl pkeyutl -verify -pubin -inkey {key} -rawin "
                  f"-in {proof.manifest} -sigfile {proof.signature}"]
        if proof.checkpoint:
            lines += [f"# listed in checkpoint / チェックポイントに掲載: {proof.checkpoint}",
                      f"$ openssl pkeyutl -verify -pubin -inkey {key_file(proof.checkpoint_key)} "
                      f"-rawin -in {proof.checkpoint} -sigfile {proof.checkpoint}.sig",
                      f"$ grep -q '{proof.sha256}' {proof.checkpoint}"]
        else:
            lines.append("# not yet in a checkpoint / まだチェックポイントに掲載されていません")
    for rec in files.recordings:
        if rec.expected and rec.named_in:
            lines += ["# the recording is the one the signed manifest names / "
                      "録音が署名済みマニフェストの記載と一致すること",
                      f"$ grep -q '\"sha256\": \"{rec.expected}\"' {rec.named_in}",
                      f"$ echo '{rec.expected}  {rec.path}' | sha256sum -c"]
    return [*lines, ""]


def _plain(text: str) -> str:
    return "".join(c if c.isprintable() and c not in "\r\n" else "?" for c in text)[:80]
