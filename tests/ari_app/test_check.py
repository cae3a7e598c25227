"""``callrec check`` findings that need no PBX."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ari_app.check import check_header_repair, check_stereo
from ari_app.config import AriAppSettings


def test_header_repair_is_judged_on_the_newest_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "no recording" in check_header_repair(tmp_path).detail
    old, new = tmp_path / "a.wav", tmp_path / "b.wav"
    old.write_bytes(b"RIFF")
    new.write_bytes(b"RIFF")
    os.utime(old, (1_790_000_000, 1_790_000_000))
    found = check_header_repair(tmp_path)
    assert found.ok and "possible (b.wav" in found.detail
    monkeypatch.setattr("ari_app.check.os.access", lambda path, mode: Path(path) != new)
    found = check_header_repair(tmp_path)
    assert found.ok and "not possible: b.wav" in found.detail and "UMask=0007" in found.detail


@pytest.mark.parametrize(("config", "version", "says"), [
    ({}, "22.10.1", "not configured (recorded mono"),
    ({"recording": {"stereo": True}}, "22.11.0", "possible"),
    ({"routes": {"9001": {"context": "a", "stereo": True}}}, "22.10.1+dfsg", "recorded mono"),
    ({"queues": {"q": {"stereo": True}}, "recording": {"stereo_on_8k_only_pbx": True}},
     "22.10.1", "possible"),
])
def test_stereo_is_said_possible_or_not_for_this_asterisk(config: dict[str, object],
                                                          version: str, says: str) -> None:
    found = check_stereo(AriAppSettings.model_validate(config), version)
    assert found.ok and found.detail.startswith(says)


def test_the_webhooks_outbox_must_be_writable(tmp_path: Path) -> None:
    from ari_app.check import check_webhooks
    from callrec.webhooks.settings import WebhookSettings

    assert check_webhooks(WebhookSettings()).ok  # none configured: nothing to check
    endpoint = {"url": "http://127.0.0.1:9/x", "secret": "whsec_" + "QUJD" * 8}
    good = WebhookSettings.model_validate({"outbox": tmp_path / "outbox",
                                           "endpoints": {"crm": endpoint}})
    found = check_webhooks(good)
    assert found.ok and "crm (0 pending, 0 dead)" in found.detail
    (tmp_path / "file").write_text("")
    bad = good.model_copy(update={"outbox": tmp_path / "file" / "outbox"})
    assert not check_webhooks(bad).ok
