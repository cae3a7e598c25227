"""Which route, policy and language a call gets; settings errors are clear."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ari_app.config import AriAppSettings, Route, load_settings
from ari_app.stasis import parse_args, wanted
from ari_app.whisper import Snoops
from callrec.manifest import Policy
from callrec.settings import BadConfigFile
from tests.fakes import flow


def test_route_policy_and_language_per_did() -> None:
    plan = flow().plan("9001", {}, "ja")
    assert plan.route == Route(context="agents", extension="q", policy=Policy.FORCE,
                               language="en")
    assert plan.policy is Policy.FORCE and plan.language == "en"


def test_stasis_args_override_the_route() -> None:
    args = parse_args(["context=other", "exten=100", "policy=never", "lang=ja", "junk"])
    plan = flow().plan("9001", args, "en")
    assert plan.route is not None and (plan.route.context, plan.route.extension) == ("other",
                                                                                      "100")
    assert plan.policy is Policy.NEVER and plan.language == "ja"


def test_unknown_did_uses_defaults_and_channel_language() -> None:
    plan = flow(default_route={"context": "fallback"}).plan("5555", {}, "ja")
    assert plan.route is not None and plan.route.context == "fallback"
    assert plan.policy is Policy.OPTIONAL and plan.language == "ja"
    assert flow().plan("5555", {"policy": "bogus"}, "").policy is Policy.OPTIONAL


def test_preflight_refuses_without_ami_or_prompt() -> None:
    f = flow()
    assert f.preflight(f.plan("9001", {}, "")) == ("ami_unavailable", "AMI is not connected")
    f.ami.connected = True
    assert f.preflight(f.plan("9001", {}, "")) is None
    reason = f.preflight(f.plan("5555", {"lang": "fr"}, ""))
    assert reason is not None and reason[0] == "prompt_missing"


def test_settings_from_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "callrec.toml"
    toml.write_text('policy = "force"\n[ari]\nurl = "http://127.0.0.1:8088"\n'
                    '[routes.0312345678]\ncontext = "agents"\n')
    monkeypatch.setenv("CALLREC_ARI__PASSWORD", "from-env")
    s = load_settings(toml)
    assert s.policy is Policy.FORCE and s.routes["0312345678"].context == "agents"
    assert s.ari.password.get_secret_value() == "from-env"
    assert "from-env" not in repr(s)


def test_malformed_settings_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('policy = "sometimes"\n')
    with pytest.raises(BadConfigFile, match="line 1: policy: Input should be"):
        load_settings(bad)
    with pytest.raises(BadConfigFile):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ValidationError, match="not a DID"):
        AriAppSettings.model_validate({"routes": {"../x": {"context": "a"}}})


def test_only_watched_variable_changes_are_parsed() -> None:
    def varset(variable: str, value: str = "x") -> str:
        return json.dumps({"type": "ChannelVarset", "variable": variable, "value": value,
                           "channel": {"id": "1", "caller": {"name": value}}})

    assert wanted(varset("BRIDGEPEER")) and wanted(varset("CALLREC_OUTCOME"))
    assert not wanted(varset("RTPAUDIOQOS")) and not wanted(varset("DIALEDTIME"))
    # A hostile value cannot smuggle a watched name past the filter: its quotes are escaped.
    assert not wanted(varset("DIALSTATUS", '"variable":"BRIDGEPEER"'))
    assert wanted(json.dumps({"type": "Dial", "caller": {"name": '"type":"ChannelVarset"'}}))
    pretty = json.dumps({"type": "ChannelVarset", "variable": "BRIDGEPEER"}, indent=2)
    assert wanted(pretty)  # ari.conf pretty=yes


async def test_a_snoop_is_awaited_until_its_stasis_start() -> None:
    """POST /snoop answers before the snoop channel is in Stasis: the tone waits for it."""
    snoops = Snoops()
    snoop_id, started = snoops.expect()
    snoops.started("someone-else")
    assert not started.done()
    snoops.started(snoop_id)
    await asyncio.wait_for(started, 1)
    snoops.started(snoop_id)  # a late duplicate is ignored
    other_id, other = snoops.expect()
    snoops.forget(other_id)
    snoops.started(other_id)
    assert other_id != snoop_id and not other.done()
