from __future__ import annotations

import subprocess
import sys

import pytest

from testbench.bench import Bench
from testbench.callrec_app import callrec_env

pytestmark = pytest.mark.integration


def run_check(bench: Bench, **overrides: str) -> subprocess.CompletedProcess[str]:
    assert bench.endpoints is not None and bench.asterisk is not None
    env = callrec_env(bench.endpoints, bench.asterisk.home, bench.asterisk.recordings,
                      **overrides)
    return subprocess.run([sys.executable, "-m", "callrec_cli", "check"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_check_passes_on_the_bench(bench: Bench) -> None:
    result = run_check(bench)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ("module app_mixmonitor", "module res_stasis", "prompt callrec/notice",
                 "spool", "AMI", "ARI", "crash header repair"):
        assert any(row.startswith("ok ") and line in row for row in result.stdout.splitlines())


def test_check_reports_each_problem(bench: Bench) -> None:
    result = run_check(bench, CALLREC_AMI__SECRET="wrong", CALLREC_NOTICE__DEFAULT_LANGUAGE="fr",
                       CALLREC_SPOOL__MIN_FREE_MB="100000000")
    assert result.returncode == 1
    failed = [row for row in result.stdout.splitlines() if row.startswith("FAIL")]
    assert any("AMI login refused" in row for row in failed)
    assert any("missing for ['fr']" in row for row in failed)
    assert any("spool" in row for row in failed)
    assert "wrong" not in result.stdout + result.stderr  # the secret is never printed


def test_bad_config_is_a_clear_error(bench: Bench) -> None:
    result = run_check(bench, CALLREC_POLICY="sometimes")
    assert result.returncode == 2
    assert "bad configuration" in result.stderr and "policy" in result.stderr
