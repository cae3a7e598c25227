"""Untrusted text made inert for each place it is shown.

Caller numbers and names arrive from the network (SIP From, P-Asserted-Identity): HTML escaping
alone leaves bidi overrides (U+202E turns "+81 3…gpj.exe" around) and control characters that
move a terminal's cursor, and a spreadsheet runs a cell that starts with "=".
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any


def inert(value: object) -> str:
    """Control, format (bidi overrides, zero-width) and separator characters other than the
    space shown as escapes (``\\u202e``)."""
    return "".join(ch if ch == " " or unicodedata.category(ch)[0] not in "CZ"
                   else ch.encode("unicode_escape").decode("ascii") for ch in str(value))


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text (OWASP "CSV injection")."""
    text = inert("" if value is None else value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def table(rows: list[dict[str, Any]], columns: tuple[str, ...], width: int = 32) -> str:
    """Rows as a plain-text table for a terminal, every cell inert and cut to ``width``."""
    cells = [[inert(_cell(r[c]))[:width] for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    return "" if value is None else str(value)


def plain(value: object) -> object:
    """A catalog value as JSON or CSV carry it: times in UTC ISO 8601, lists space-separated."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list):
        return " ".join(map(str, value))
    return value


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, indent=2, default=str)
