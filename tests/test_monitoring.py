"""The shipped monitoring (deploy/grafana/callrec.json, deploy/prometheus/callrec-rules.yml):
promtool accepts the rules, and every metric they name is one the services really export, read
from their own registries and, in the integration test, from a running callrec's /metrics."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from archive.evidence.desk import ReconcileMetrics, VerifyMetrics
from ari_app.metrics import CallMetrics
from callrec.webhooks.metrics import WebhookMetrics
from testbench.bench import Bench
from testbench.procs import free_port
from testbench.webhooks import Receiver
from tests.helpers import REPO
from uploader.metrics import Metrics as UploadMetrics

RULES = REPO / "deploy/prometheus/callrec-rules.yml"
DASHBOARD = REPO / "deploy/grafana/callrec.json"
PROMTOOL = Path("/var/cache/callrec/promtool/promtool")  # scripts/install-deps.sh
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count", "_created")}


def named(text: str) -> set[str]:
    return set(re.findall(r"\bcallrec_[a-z0-9_]+", text))


def shipped_names() -> set[str]:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"]
             for t in p["targets"]]
    return named(RULES.read_text()) | named("\n".join(exprs))


def exported(*registries: CollectorRegistry) -> set[str]:
    """Every sample name the registries can export (a labelled family has none until used)."""
    return {family.name + suffix for r in registries for family in r.collect()
            for suffix in SUFFIXES.get(family.type, ("",))}


def test_promtool_accepts_the_rules() -> None:
    if not PROMTOOL.exists():
        pytest.fail(f"{PROMTOOL} missing: run `make deps`")
    checked = subprocess.run([str(PROMTOOL), "check", "rules", str(RULES)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 15 rules found" in checked.stdout


def test_every_metric_shipped_is_exported() -> None:
    names = shipped_names()
    assert len(names) >= 20
    missing = names - exported(CallMetrics(lambda: 0.0).registry, UploadMetrics().registry,
                               VerifyMetrics().registry, ReconcileMetrics().registry,
                               WebhookMetrics(CollectorRegistry()).registry)
    assert missing == set()


def test_the_dashboard_is_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "callrec" and dash["__inputs"][0]["pluginId"] == "prometheus"
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    boxes = [(p["gridPos"]["x"], p["gridPos"]["y"], p["gridPos"]["w"]) for p in dash["panels"]]
    assert all(x + w <= 24 for x, _, w in boxes) and len(set(boxes)) == len(boxes)


def families(port: int) -> set[str]:
    """The metric families a running service's /metrics declares (its HELP lines)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}


@pytest.mark.integration
def test_a_running_call_flow_and_uploader_export_what_is_shipped(
        bench: Bench, locked_bucket: str, tmp_path: Path) -> None:
    # An endpoint configured: the webhooks' metrics are served by both (the sender's host).
    receiver = Receiver()
    hooks = {**receiver.env(), "CALLREC_WEBHOOKS__OUTBOX": str(tmp_path / "outbox")}
    app = bench.start_callrec(**hooks)
    port = free_port()
    env = bench.service_env(locked_bucket, tmp_path, "monitor",
                            CALLREC_UPLOAD__METRICS_PORT=str(port),
                            CALLREC_UPLOAD__SPOOL=str(tmp_path / "spool"), **hooks)
    (tmp_path / "spool").mkdir()
    uploader = bench.start_uploader(env)
    try:
        declared = families(app.metrics_port) | families(port)
    finally:
        uploader.stop(timeout=30)
        app.stop()
        receiver.down()
    # The archive's verify and reconcile metrics come from the archive host (its web server or
    # a textfile): checked against their registries above.
    served = {base(n) for n in shipped_names()
              if not n.startswith(("callrec_archive_", "callrec_reconcile_"))}
    assert len(served) >= 15 and served - {base(n) for n in declared} == set()


def base(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)
