"""What the wheel carries: the services and the PBX host's files (dialplan, prompts, units,
example config), not the test bench, the benchmarks or the tests (they run from the checkout).
The wheel itself is built and installed in tests/test_setup.py."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from tests.helpers import REPO


def test_the_wheel_lists_every_service_package_and_not_the_bench() -> None:
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(found["packages"])
    # Every directory with an __init__.py: a new subpackage left out of the list would be
    # missing from the wheel (the list is explicit because of the share.* mappings).
    packages = {".".join(init.parent.relative_to(REPO).parts)
                for init in REPO.glob("*/**/__init__.py") if ".venv" not in init.parts}
    roots = {"callrec", "callrec_cli", "ari_app", "uploader", "archive"}
    assert {p for p in packages if p.split(".")[0] in roots} == listed - set(found["package-dir"])
    assert {"testbench", "tests", "bench"} <= packages - listed
    assert "testbench" not in found.get("package-data", {})


def test_the_pbx_hosts_files_are_package_data() -> None:
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert found["package-dir"] == {"callrec_cli.share.dialplan": "dialplan",
                                    "callrec_cli.share.sounds": "sounds",
                                    "callrec_cli.share.deploy": "deploy"}
    data = found["package-data"]
    for package, top in found["package-dir"].items():
        shipped = [p for p in (REPO / top).rglob("*") if p.is_file() and p.suffix != ".py"
                   and "__pycache__" not in p.parts]
        assert shipped and all(
            any(fnmatch(str(p.relative_to(REPO / top)), pat) for pat in data[package])
            for p in shipped if not p.name.startswith(".")), top
