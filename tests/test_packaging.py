"""What the wheel carries: the services and their data, not the test bench, the benchmarks or
the tests (they run from the checkout)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from tests.helpers import REPO


def test_the_wheel_carries_the_services_and_not_the_bench() -> None:
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = found["packages"]["find"]["include"]
    # setuptools' find_packages: every directory with an __init__.py matching a pattern.
    packages = {".".join(init.parent.relative_to(REPO).parts)
                for init in REPO.glob("*/**/__init__.py") if ".venv" not in init.parts}
    shipped = {p for p in packages if any(fnmatch(p, pattern) for pattern in include)}
    assert {p.split(".")[0] for p in shipped} == {"callrec", "callrec_cli", "ari_app",
                                                    "uploader", "archive"}
    assert {"archive.web", "archive.cli", "archive.catalog", "archive.evidence"} <= shipped
    assert {"testbench", "tests", "bench"} <= packages - shipped
    assert "testbench" not in found.get("package-data", {})
