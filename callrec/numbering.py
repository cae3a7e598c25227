"""The numbering plan caller numbers are read in, so that search finds a caller however the
network or ops spell the number: ``03-1234-5678``, ``0312345678`` and ``+81312345678`` are one
caller (E.164). Shared by the uploader (which may feed the catalog) and the archive."""

from __future__ import annotations

from pydantic import Field

from callrec.sections import Section


class NumberingPlan(Section):
    country_code: str = Field("81", pattern=r"^[1-9][0-9]{0,2}$")
    national_prefix: str = Field("0", pattern=r"^[0-9]{0,2}$")
    international_prefix: str = Field("010", pattern=r"^[0-9]{0,4}$")

    def e164(self, number: str, partial: bool = False) -> str:
        """E.164 form of a normalised number; extensions and short codes (no prefix) stay as
        they are. ``partial``: a typed prefix ("03" -> "+813")."""
        if number.startswith("+"):
            return number
        if self.international_prefix and number.startswith(self.international_prefix):
            return "+" + number[len(self.international_prefix):]
        if self.national_prefix and number.startswith(self.national_prefix) and (
                partial or len(number) > 4):  # "0" alone (an operator code) is no number
            return "+" + self.country_code + number[len(self.national_prefix):]
        return number
