"""What every model of the manifest shares: unknown fields are refused (a manifest of a newer
schema is not read as if it were this one)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)
