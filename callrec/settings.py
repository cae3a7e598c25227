"""What every service's settings share: env prefix ``CALLREC_``, nested sections with ``__``
(``CALLREC_S3__BUCKET``), a TOML file from ``--config FILE`` (the environment wins over the file,
the file over the defaults), passwords as ``SecretStr`` (never logged, never in URLs).

Each service has one settings class derived from ``CallrecSettings`` with the sections it uses;
sections two services share are defined once, below the services (callrec/s3/settings.py).
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callrec import CallrecError

_TOML: ContextVar[Path | None] = ContextVar("callrec_toml", default=None)
S = TypeVar("S", bound="CallrecSettings")


class BadConfigFile(CallrecError):
    """``--config FILE`` names no file, or one that is not TOML."""


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
                TomlConfigSettingsSource(settings_cls, toml_file=_TOML.get()))


def load(cls: type[S], toml_file: Path | None = None) -> S:
    """``cls`` from the environment, then ``toml_file``, then its defaults."""
    if toml_file is not None and not toml_file.is_file():
        raise BadConfigFile(f"config file {toml_file} not found")
    token = _TOML.set(toml_file)
    try:
        return cls()
    except tomllib.TOMLDecodeError as exc:
        raise BadConfigFile(f"config file {toml_file} is not valid TOML: {exc}") from exc
    finally:
        _TOML.reset(token)
