"""Untrusted text made inert for each place it is shown.

Caller numbers and names arrive from the network (SIP From, P-Asserted-Identity): HTML escaping
alone leaves bidi overrides (U+202E turns "+81 3…gpj.exe" around) and control characters that
move a terminal's cursor, and a spreadsheet runs a cell that starts with "=".
"""

from __future__ import annotations

import unicodedata


def inert(value: object) -> str:
    """Control, format (bidi overrides, zero-width) and separator characters other than the
    space shown as escapes (``\\u202e``)."""
    return "".join(ch if ch == " " or unicodedata.category(ch)[0] not in "CZ"
                   else ch.encode("unicode_escape").decode("ascii") for ch in str(value))


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text (OWASP "CSV injection")."""
    text = inert("" if value is None else value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
