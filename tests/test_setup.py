"""``callrec setup`` on a PBX as admins have it (testbench/admin.py: Debian's stock configuration,
a FreePBX-style tree): a dry run writes nothing, setup makes a real call announced, recorded and
archived, a second run changes nothing, ``--undo`` leaves the tree byte-identical. The stock
layout is set up by the wheel ``make dist`` builds, installed in a fresh venv outside the
checkout: its prompts and dialplan come from the package, not from the source tree."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from callrec.manifest import CallManifest, RecordingStatus
from testbench.asterisk import AsteriskCredentials
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.procs import free_port, wait_until
from testbench.s3 import create_locked_bucket, s3_client
from tests.helpers import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DID = "9001"  # the admin's dialplan sends it into callrec-inbound (testbench/conf/extensions)


@pytest.fixture(scope="module")
def wheel_callrec(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``callrec`` from the wheel ``make dist`` builds, in a venv of its own."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(["make", "-C", str(REPO), "dist", f"DIST={work / 'dist'}"], check=True,
                   capture_output=True)
    wheel = next((work / "dist").glob("callrec-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    subprocess.run([str(work / "venv/bin/pip"), "install", "-q", str(wheel)], check=True,
                   cwd=work, capture_output=True)
    where = subprocess.run([str(work / "venv/bin/python"), "-c", "from callrec_cli.setup."
                            "assets import share; print(share('sounds').joinpath('ja'), "
                            "share('dialplan').joinpath('callrec.conf'))"],
                           cwd=work, capture_output=True, text=True, check=True).stdout.split()
    assert all(path.startswith(str(work / "venv")) for path in where), where
    version = subprocess.run([str(work / "venv/bin/callrec"), "--version"], cwd=work,
                             capture_output=True, text=True, check=True).stdout
    assert version.startswith("callrec 0.")
    return [str(work / "venv/bin/callrec")]


@pytest.fixture(params=["stock", "freepbx"])
def admin_pbx(request: pytest.FixtureRequest) -> Iterator[Bench]:
    bench = Bench("setup", layout=request.param)
    bench.up(agents=("answer",))
    try:
        yield bench
    finally:
        assert bench.asterisk is not None
        subprocess.run([sys.executable, "-m", "callrec_cli", "setup", "--undo", "--root",
                        str(bench.asterisk.root), "--asterisk",
                        " ".join(bench.asterisk.command)], capture_output=True, check=False)
        bench.down()


def snapshot(root: Path, paths: list[str]) -> dict[str, tuple[bytes, int, int, int]]:
    """Every file and directory under ``paths`` (inside ``root``): bytes, mode and owner."""
    found: dict[str, tuple[bytes, int, int, int]] = {}
    for top in paths:
        base = root / top.lstrip("/")
        for path in [base, *base.rglob("*")] if base.exists() else []:
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            found[str(path)] = (data, st.st_mode, st.st_uid, st.st_gid)
    return found


def test_setup_plugs_callrec_into_an_admins_pbx(admin_pbx: Bench, wheel_callrec: list[str],
                                                tmp_path: Path) -> None:
    bench, asterisk = admin_pbx, admin_pbx.asterisk
    assert asterisk is not None and bench.endpoints is not None and bench.s3 is not None
    ep = bench.endpoints
    callrec = wheel_callrec if bench.layout == "stock" else \
        [sys.executable, "-m", "callrec_cli"]
    bucket = f"setup-{uuid.uuid4().hex[:10]}"
    create_locked_bucket(s3_client(ep.s3_endpoint, ep.s3), bucket)
    env = {**os.environ, "CALLREC_S3__ACCESS_KEY": ep.s3.access_key,
           "CALLREC_S3__SECRET_KEY": ep.s3.secret_key}
    flags = ["--root", str(asterisk.root), "--asterisk", " ".join(asterisk.command),
             "--http-port", str(bench.ports.http), "--s3-endpoint", ep.s3_endpoint,
             "--s3-bucket", bucket, "--route", f"{DID}=callrec-sandbox-route,answer"]

    def setup(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*callrec, "setup", *flags, *extra], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False)

    # Not the spool: the call leaves its recording and callrec's journal there (data, which
    # --undo keeps).
    watched = [asterisk.home + "/etc", asterisk.datadir + "/sounds", "/etc/callrec",
               "/etc/systemd/system", "/var/lib/callrec"]
    before = snapshot(asterisk.root, watched)
    dry = setup("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+#tryinclude" in dry.stdout and snapshot(asterisk.root, watched) == before

    first = setup()
    assert first.returncode == 0, first.stdout + first.stderr  # callrec check passed too
    secrets = dict(line.split("=", 1) for line in (
        asterisk.root / "etc/callrec/secrets.env").read_text().splitlines() if "=" in line)
    assert (asterisk.root / "etc/callrec/secrets.env").stat().st_mode & 0o777 == 0o600
    assert all(value not in first.stdout + first.stderr for value in secrets.values())
    after = snapshot(asterisk.root, watched)
    etc = asterisk.root / asterisk.home.lstrip("/") / "etc"
    hooked = {p.name for p in etc.glob("*.conf") if b"callrec setup --undo" in p.read_bytes()}
    expected = {"extensions", "manager", "http", "ari", "cdr", "features"}
    if bench.layout == "freepbx":  # FreePBX's generated files untouched: its *_custom.conf
        assert hooked == {"extensions_custom.conf", "manager_custom.conf", "http_custom.conf",
                          "ari_additional_custom.conf", "cdr_general_custom.conf",
                          "features_applicationmap_custom.conf"}
    else:  # Debian's own http.conf has the server off: setup turns it on, on loopback
        assert hooked == {f"{name}.conf" for name in expected}
    again = setup()
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert snapshot(asterisk.root, watched) == after
    shown = setup("--dry-run", "--language", "en")
    assert "+default_language = \"en\"" in shown.stdout
    assert all(value not in shown.stdout for value in secrets.values())

    call_through(bench, secrets, bucket, tmp_path)

    undone = subprocess.run([*callrec, "setup", "--undo", *flags[:4]], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert snapshot(asterisk.root, watched) == before
    passwd = (asterisk.root / "etc/passwd").read_text().splitlines()
    assert not any(line.startswith("callrec:") for line in passwd)
    assert "There is no existence" in asterisk.cli("dialplan show callrec-inbound")


def call_through(bench: Bench, secrets: dict[str, str], bucket: str, work: Path) -> None:
    """A real call on what setup configured: announced, recorded, archived in S3."""
    asterisk, ep = bench.asterisk, bench.endpoints
    assert asterisk is not None and ep is not None
    config = asterisk.root / "etc/callrec/callrec.toml"
    creds = AsteriskCredentials("callrec", secrets["CALLREC_ARI__PASSWORD"], "callrec",
                                secrets["CALLREC_AMI__SECRET"])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **secrets,
           "CALLREC_AGI__PORT": str(bench.ports.agi), "CALLREC_METRICS__PORT": "0",
           "CALLREC_EVIDENCE__DIR": str(work / "evidence"), "CALLREC_EVIDENCE__HOST": "setup"}
    app = CallrecApp(dataclasses.replace(ep, asterisk=creds), env, bench.log_dir, config)
    app.start()
    number = "0" + str(uuid.uuid4().int)[:10]
    try:
        mark = asterisk.log_mark()
        run = bench.caller().call(DID, hold_s=6, caller_user=number)
        assert run.calls and run.calls[0].final_status == 200
        spool = asterisk.recordings

        def manifest() -> CallManifest | None:
            for path in spool.glob("*.json"):
                found = CallManifest.read(path)
                if found.caller.number_raw == number:
                    return found
            return None

        wait_until(manifest, "the call's manifest", 20)
    finally:
        app.stop()
    m = manifest()
    assert m is not None and m.status is RecordingStatus.RECORDED, m
    assert m.asterisk_channel is not None
    assert asterisk.plays(m.asterisk_channel, "callrec/notice", mark) == 1
    upload_env = {"PATH": env["PATH"], "CALLREC_S3__ACCESS_KEY": ep.s3.access_key,
                  "CALLREC_S3__SECRET_KEY": ep.s3.secret_key, "CALLREC_RETENTION__MODE":
                  "GOVERNANCE", "CALLREC_RETENTION__DAYS": "1",
                  "CALLREC_EVIDENCE__DIR": str(work / "evidence"),
                  "CALLREC_EVIDENCE__HOST": "setup", "CALLREC_UPLOAD__METRICS_PORT": str(
                      free_port())}
    drained = subprocess.run([sys.executable, "-m", "callrec_cli", "upload", "--drain",
                              "--config", str(config)], env=upload_env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert drained.returncode == 0, drained.stderr[-2000:]
    keys = [o["Key"] for o in s3_client(ep.s3_endpoint, ep.s3).list_objects_v2(
        Bucket=bucket).get("Contents", [])]
    assert any(m.call_id in key and key.endswith(".json") for key in keys), json.dumps(keys)
