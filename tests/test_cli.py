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
