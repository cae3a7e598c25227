"""One configuration story: one TOML file holds every service's sections, every setting of
every service is in deploy/callrec.toml.example, an unknown key anywhere is refused by name and
line."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

from callrec.sections import Section
from callrec.settings import BadConfigFile, CallrecSettings, check_file, load
from callrec_cli.main import main, services

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy/callrec.toml.example"
# "# key = value" and "# [table]": a setting the example shows commented out (a default TOML
# cannot write, or a table to copy). Prose comments never start with a bare key and "=".
COMMENTED = re.compile(r"^#\s?(?=\[|[A-Za-z_][A-Za-z0-9_.-]*\s*=)")
WILD = "*"  # any key of a dict of sections (routes, queues, agents, users ...)


def _section_of(annotation: Any) -> tuple[type[Section] | None, bool]:
    """The section type a field holds (itself, optional, or a dict's values: True)."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation, False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict and isinstance(args[1], type) and \
            issubclass(args[1], Section):
        return args[1], True
    inner = [a for a in args if isinstance(a, type) and issubclass(a, Section)]
    return (inner[0], False) if inner else (None, False)


def setting_paths(model: type[Section] | type[CallrecSettings],
                  prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every setting of a model, as its path of keys (``WILD`` for a dict entry)."""
    out: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        section, is_dict = _section_of(field.annotation)
        path = (*prefix, name)
        if section is None:
            out.add(path)
        else:
            out |= setting_paths(section, (*path, WILD) if is_dict else path)
    return out


def section_paths(model: type[Section] | type[CallrecSettings],
                  prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every section (table) of a model, with ``"x"`` for a dict's entry."""
    out: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        section, is_dict = _section_of(field.annotation)
        if section is not None:
            path = (*prefix, name, "x") if is_dict else (*prefix, name)
            out |= {path} | section_paths(section, path)
    return out


def present(data: Any, path: tuple[str, ...]) -> bool:
    if not path:
        return True
    if not isinstance(data, dict):
        return False
    head, rest = path[0], path[1:]
    if head == WILD:
        return any(present(v, rest) for v in data.values())
    return head in data and present(data[head], rest)


def every_path() -> set[tuple[str, ...]]:
    return {p for cls in services() for p in setting_paths(cls)}


def example_text(uncomment: bool) -> str:
    text = EXAMPLE.read_text()
    if not uncomment:
        return text
    return "\n".join(COMMENTED.sub("", line) for line in text.splitlines()) + "\n"


@pytest.mark.parametrize("uncomment", [False, True], ids=["as-shipped", "uncommented"])
def test_the_example_config_is_valid_for_every_service(uncomment: bool, tmp_path: Path) -> None:
    text = example_text(uncomment)
    check_file(EXAMPLE, text, tomllib.loads(text), services())  # raises on any problem


def test_the_example_config_lists_every_setting_of_every_service() -> None:
    data = tomllib.loads(example_text(uncomment=True))
    missing = sorted(".".join(p) for p in every_path() if not present(data, p))
    assert missing == []


def test_an_unknown_key_in_any_section_is_refused_with_its_name_and_line(
        tmp_path: Path) -> None:
    sections = {p for cls in services() for p in section_paths(cls)}
    assert len(sections) > 20  # every service's sections, not a few
    for table in sorted(sections):
        config = tmp_path / "callrec.toml"
        required = {"routes", "default_route", "supervisor_route", "users", "tokens", "agents"}
        filler = ('context = "x"\nrole = "viewer"\npassword_hash = "x"\nsha256 = "x"\n'
                  'id = "x"\n') if required & set(table) else ""
        config.write_text(f"# comment\n[{'.'.join(table)}]\n{filler}not_a_setting = 1\n")
        line = 3 + filler.count("\n")
        for cls in services():
            with pytest.raises(BadConfigFile) as refused:
                load(cls, config, services())
            assert f"line {line}: {'.'.join(table)}.not_a_setting: unknown key" in \
                str(refused.value)


def test_a_key_no_service_knows_is_refused_and_the_others_sections_are_not(
        tmp_path: Path) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text('policy = "force"\n[upload]\nconcurrency = 2\n[web]\nport = 9000\n')
    from archive.config import ArchiveSettings
    from ari_app.config import AriAppSettings
    from uploader.config import UploaderSettings

    assert load(AriAppSettings, config, services()).policy == "force"
    assert load(UploaderSettings, config, services()).upload.concurrency == 2
    assert load(ArchiveSettings, config, services()).web.port == 9000
    config.write_text('polcy = "force"\n')
    with pytest.raises(BadConfigFile, match=r"line 1: polcy: unknown key"):
        load(UploaderSettings, config, services())


def test_the_environment_wins_over_the_file_and_other_services_variables_are_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from uploader.config import UploaderSettings

    config = tmp_path / "callrec.toml"
    config.write_text("[upload]\nconcurrency = 2\n[s3]\nbucket = \"calls\"\n")
    monkeypatch.setenv("CALLREC_UPLOAD__CONCURRENCY", "7")
    monkeypatch.setenv("CALLREC_ARI__URL", "http://127.0.0.1:1")  # callrec ari's, not ours
    loaded = load(UploaderSettings, config, services())
    assert (loaded.upload.concurrency, loaded.s3.bucket) == (7, "calls")


def test_every_daemon_refuses_a_typo_in_a_section_it_does_not_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text("[web]\nsesion_hours = 2\n")
    for command in (["check"], ["upload", "--drain"], ["archive", "sync"]):
        assert main([*command, "--config", str(config)]) == 2
        assert "line 2: web.sesion_hours: unknown key" in capsys.readouterr().err


def test_the_shipped_units_pass_the_one_config_file() -> None:
    units = sorted((EXAMPLE.parent).glob("callrec-*.service"))
    assert len(units) == 3
    for unit in units:
        start = next(line for line in unit.read_text().splitlines()
                     if line.startswith("ExecStart="))
        assert start.endswith("--config /etc/callrec/callrec.toml"), unit.name
