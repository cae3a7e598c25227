"""What every service's settings share: env prefix ``CALLREC_``, nested sections with ``__``
(``CALLREC_S3__BUCKET``), one TOML file from ``--config FILE`` (the environment wins over the
file, the file over the defaults), passwords as ``SecretStr`` (never logged, never in URLs).

One file may hold every service's sections (deploy/callrec.toml.example): each service takes its
own, and the whole file is checked against every service's model first, so a key no service
knows, or a bad value in a section another service reads, is refused by whichever daemon starts,
with the key's name and its line in the file. Sections derive from ``callrec.sections.Section``
(unknown keys are errors there too). Each service has one settings class derived from
``CallrecSettings``; sections two services share are defined once, below the services
(callrec/s3/settings.py).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from callrec import CallrecError

# The file's sections that the class being built has (load() sets it around the build).
_FILE: ContextVar[dict[str, Any]] = ContextVar("callrec_file")
S = TypeVar("S", bound="CallrecSettings")
_HEADER = re.compile(r"^\s*\[\[?([^\[\]]+)\]\]?\s*(#.*)?$")
_BARE = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""  # a TOML key part: bare or quoted
_KEY = re.compile(rf"^\s*({_BARE}(?:\s*\.\s*{_BARE})*)\s*=")
_PART = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"([^"]*)"|'([^']*)')\s*(?:\.|$)""")


# Keys of earlier releases, refused with where their setting went.
RETIRED = {"alerts": "moved: the agents' warnings and ends are call.flagged webhook events; set "
                     "[webhooks.endpoints.NAME] (docs/admin.md, Webhooks)"}


class BadConfigFile(CallrecError):
    """``--config FILE`` names no file, one that is not TOML, or one with unknown keys or bad
    values (each named with its line)."""


class CallrecSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLREC_", env_nested_delimiter="__",
                                      extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings,
                InitSettingsSource(settings_cls, init_kwargs=_FILE.get({})))


def load(cls: type[S], toml_file: Path | None = None,
         every: Sequence[type[CallrecSettings]] = ()) -> S:
    """``cls`` from the environment, then ``toml_file``, then its defaults. The file is first
    checked against ``every`` service's settings (default: ``cls`` alone), which between them
    must know each of its keys."""
    data: dict[str, Any] = {}
    if toml_file is not None:
        text, data = read_file(toml_file)
        check_file(toml_file, text, data, every or (cls,))
    token = _FILE.set({k: v for k, v in data.items() if k in cls.model_fields})
    try:
        return cls()
    finally:
        _FILE.reset(token)


def read_file(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BadConfigFile(f"config file {path} not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadConfigFile(f"config file {path} cannot be read: {exc}") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadConfigFile(f"config file {path} is not valid TOML: {exc}") from exc


def check_file(path: Path, text: str, data: dict[str, Any],
               services: Sequence[type[CallrecSettings]]) -> None:
    """Every key of the file belongs to a service and is valid there (the file alone: the
    environment is not read), or BadConfigFile lists each problem with its line."""
    known = {name for cls in services for name in cls.model_fields}
    problems: dict[tuple[str, ...], str] = {
        (key,): RETIRED.get(key, "unknown key (no callrec service has this setting)")
        for key in data if key not in known}
    for cls in services:
        try:  # model_validate: the file's values only, no settings sources
            cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(str(part) for part in error["loc"])
                problems.setdefault(loc, "unknown key" if error["type"] == "extra_forbidden"
                                    else error["msg"])
    if problems:
        lines = key_lines(text)
        found = sorted((_line_of(loc, lines), ".".join(loc), why)
                       for loc, why in problems.items())
        raise BadConfigFile(f"config file {path}: " + "; ".join(
            f"line {line or '?'}: {key}: {why}" for line, key, why in found))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line where each table and key of a TOML text is first written (``[a.b]``, ``k =``,
    dotted keys), for error messages: tomllib keeps no positions."""
    table: tuple[str, ...] = ()
    lines: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(table + _parts(key.group(1)), number)
    return lines


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(next(g for g in m.groups() if g is not None)
                 for m in _PART.finditer(dotted) if m.group(0).strip())


def _line_of(loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int:
    """The line of ``loc``, else of the nearest table or key that holds it (0: none)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 0
