"""The archive UI in Japanese and English, with gettext catalogs and Jinja2's i18n extension.

Texts are marked in the templates (``_()``, ``ngettext()``) and in code (``N_()`` below, for values
shown as labels); ``make i18n`` extracts them with Babel into ``archive/locale/messages.pot`` and
updates ``archive/locale/<lang>/LC_MESSAGES/messages.po``, where translators work. The .po files
are compiled in memory when the web server starts (Babel's own compiler): no stale .mo can ship.

The language: the one a logged-in user picked with the language links (kept for the user, so all
their browsers follow), else the ``callrec_lang`` cookie those links set (before a login), else
the browser's Accept-Language, else English.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = (("ja", "日本語"), ("en", "English"))
CODES = tuple(code for code, _ in LANGUAGES)
DEFAULT = "en"
LANG_COOKIE = "callrec_lang"
_current: ContextVar[str] = ContextVar("callrec_lang", default=DEFAULT)


def N_(text: str) -> str:  # noqa: N802 (gettext's name for "mark only")
    """Marks a text for extraction; translated where it is shown (the ``label`` filter)."""
    return text


# Values the UI shows as labels: recording statuses, outcomes, places, flags, events, roles.
LABELS = (N_("recorded"), N_("unrecorded"), N_("interrupted"), N_("completed"), N_("abandoned"),
    N_("abandoned_in_notice"), N_("no_agent"), N_("failed"), N_("harassment"), N_("complaint"),
    N_("inbound"), N_("outbound"), N_("notice"), N_("queue"), N_("ringing"), N_("parked"),
    N_("waiting"), N_("answered"), N_("timeout"), N_("full"), N_("joinempty"), N_("leaveempty"),
    N_("joinunavail"), N_("leaveunavail"), N_("continue"), N_("retrieved"), N_("caller_hung_up"),
    N_("any"), N_("agent_warning"), N_("ended_by_agent"), N_("long_call"), N_("repeat_caller"),
    N_("notice_started"), N_("notice_ended"), N_("queue_entered"), N_("queue_left"),
    N_("agent_offered"), N_("agent_answered"), N_("agent_left"), N_("transferred"),
    N_("unparked"), N_("warning_played"), N_("warning_refused"), N_("end_refused"), N_("ended"),
    N_("viewer"), N_("supervisor"), N_("admin"), N_("warning"), N_("refuse"), N_("manual"),
    N_("auto"), N_("refused"), N_("verified"), N_("missing"), N_("altered"), N_("unsigned"),
    N_("chain_breaks"), N_("checkpoints_missing"), N_("resolved"), N_("escalated"),
    N_("problem"), N_("clean"), N_("customer_silent"), N_("agent_silent"), N_("silent"),
    N_("mix"), N_("customer"), N_("agent"), N_("recording_paused"), N_("recording_resumed"),
    N_("resume_unproven"), N_("pause_refused"), N_("key"), N_("api"), N_("dialplan"),
    N_("resume"), N_("transfer"), N_("agent_changed"), N_("hangup"), N_("restart"),
    N_("recording_not_resumed"))


def load() -> dict[str, NullTranslations]:
    """Every language's catalog, compiled from its .po (English is the source language)."""
    catalogs: dict[str, NullTranslations] = {"en": NullTranslations()}
    for code in CODES:
        po = LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"
        if code == "en" or not po.exists():
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=code)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        catalogs[code] = Translations(buffer)
    return catalogs


def current_language() -> str:
    return _current.get()


class Texts:
    """The gettext functions the templates call, in the language of the request being
    rendered (``use`` sets it for the request's task)."""

    def __init__(self) -> None:
        self.catalogs = load()

    def use(self, code: str) -> None:
        _current.set(code if code in self.catalogs else DEFAULT)

    def gettext(self, text: str) -> str:
        return self.catalogs[_current.get()].gettext(text)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalogs[_current.get()].ngettext(singular, plural, n)

    def label(self, value: object) -> str:
        return self.gettext(str(value)) if value else ""

    def labels(self, values: str) -> str:
        return ", ".join(self.label(v) for v in values.split(",") if v)


def choose(cookie: str | None, accept_language: str) -> str:
    """The user's choice, else the browser's first language we have, else English."""
    if cookie in CODES:
        return str(cookie)
    weighted = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weighted.append((-q, i, tag.strip().lower().split("-")[0]))
    for _, _, code in sorted(weighted):
        if code in CODES:
            return code
    return DEFAULT
