from __future__ import annotations

import logging
from pathlib import Path

import pytest

from callrec import __version__
from callrec_cli.main import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"callrec {__version__}"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: callrec" in capsys.readouterr().out


@pytest.mark.parametrize("command", [
    ["ari"], ["check"], ["upload"], ["upload", "--drain"],
    ["outcome", "set", "20261123T164052Z-c1005ac3d30b", "complaint"],
    ["archive", "sync"], ["archive", "search"], ["archive", "serve"],
    ["archive", "show", "20261123T164052Z-c1005ac3d30b"], ["archive", "audit"],
    ["webhooks", "status"], ["webhooks", "retry-dead", "crm"],
])
def test_every_command_takes_a_config_file_and_says_when_it_is_missing(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main([*command, "--config", str(missing)]) == 2
    assert f"config file {missing} not found" in capsys.readouterr().err


def test_a_bad_config_file_is_a_clear_error_for_every_service(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[upload]\nconcurrency = "many"\n[archive]\nlookback_days = -1\n')
    assert main(["upload", "--drain", "--config", str(bad)]) == 2
    assert "concurrency" in capsys.readouterr().err
    assert main(["archive", "sync", "--config", str(bad)]) == 2
    assert "lookback_days" in capsys.readouterr().err


def test_the_log_level_holds_for_every_command(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("CALLREC_LOG_LEVEL", "WARNING")
    logging.getLogger().handlers.clear()
    main(["archive", "sync", "--config", str(tmp_path / "nope.toml")])
    assert logging.getLogger().level == logging.WARNING


def test_a_config_file_that_is_not_toml_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[ari\nurl = \n")
    assert main(["check", "--config", str(broken)]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_webhooks_keygen_writes_a_private_env_file_and_prints_only_the_public_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "secrets.env"
    assert main(["webhooks", "keygen", "crm", "--write", str(env)]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split("=", 1) for line in env.read_text().splitlines())
    secret = lines["CALLREC_WEBHOOKS__ENDPOINTS__CRM__SECRET"]
    key = lines["CALLREC_WEBHOOKS__ENDPOINTS__CRM__SIGNING_KEY"]
    assert secret.startswith("whsec_") and key.startswith("whsk_")
    assert secret not in out and key not in out and "whpk_" in out
    assert env.stat().st_mode & 0o777 == 0o600
    env.chmod(0o644)
    assert main(["webhooks", "keygen", "crm", "--write", str(env)]) == 1
    assert len(env.read_text().splitlines()) == 2  # nothing added to a readable file


def test_webhooks_status_and_retry_dead(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from callrec.webhooks.outbox import Event, Outbox
    from callrec.webhooks.settings import EventType, WebhookSettings

    settings = WebhookSettings.model_validate({"outbox": tmp_path / "outbox", "endpoints": {
        "crm": {"url": "http://127.0.0.1:9/x", "secret": "whsec_" + "QUJD" * 8}}})
    outbox = Outbox(settings)
    outbox.emit(Event.make(EventType.CALL_ARCHIVED, "call-a", {}))
    outbox.emit(Event.make(EventType.CALL_FLAGGED, "call-a", {}))
    outbox.bury(outbox.root / "crm" / outbox.pending("crm")[0])
    config = tmp_path / "callrec.toml"
    config.write_text(f'[webhooks]\noutbox = "{tmp_path / "outbox"}"\n'
                      '[webhooks.endpoints.crm]\nurl = "http://127.0.0.1:9/x"\n')
    monkeypatch.setenv("CALLREC_WEBHOOKS__ENDPOINTS__CRM__SECRET", "whsec_" + "QUJD" * 8)
    assert main(["webhooks", "status", "--config", str(config)]) == 0
    [row] = [line.split() for line in capsys.readouterr().out.splitlines()
             if line.startswith("crm")]
    assert row[1] == "1" and row[-1] == "1"  # one pending, one dead
    assert main(["webhooks", "retry-dead", "crm", "--config", str(config)]) == 0
    assert len(outbox.pending("crm")) == 2 and outbox.dead("crm") == []
