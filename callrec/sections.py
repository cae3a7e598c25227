"""The base of every settings section: a key a section does not know is an error, never ignored.

pydantic's ``BaseModel`` drops unknown keys by default, so ``[web] sesion_hours = 2`` left the
8-hour default in force without a word. Every section of every service derives from
:class:`Section` instead, and ``callrec.settings.load`` names the key and its line in the file.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
