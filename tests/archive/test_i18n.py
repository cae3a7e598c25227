"""The archive UI's catalogs (archive/web/i18n.py): complete, current with the templates, and the
language chosen as users expect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from archive.web.i18n import LOCALE_DIR, Texts, choose
from tests.helpers import REPO


def msgids(path: Path) -> set[object]:
    with path.open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


def test_the_catalog_template_is_current_and_japanese_is_complete(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    "babel.cfg", "-k", "N_", "-k", "ngettext:1,2", "--no-location",
                    "--sort-output", "-o", str(pot), "."], cwd=REPO, check=True,
                   capture_output=True)
    fresh = msgids(pot)
    assert fresh == msgids(LOCALE_DIR / "messages.pot"), "run `make i18n`"
    ja = LOCALE_DIR / "ja" / "LC_MESSAGES" / "messages.po"
    with ja.open("rb") as f:
        catalog = read_po(f, locale="ja")
    assert {m.id for m in catalog if m.id} == fresh
    untranslated = [m.id for m in catalog if m.id and not all(
        m.string if isinstance(m.string, tuple) else [m.string])]
    assert untranslated == [] and not any(m.fuzzy for m in catalog if m.id)


def test_the_language_is_the_users_choice_then_the_browsers_then_english() -> None:
    assert choose("ja", "en-US,en;q=0.9") == "ja"
    assert choose(None, "ja-JP,ja;q=0.9,en;q=0.8") == "ja"
    assert choose(None, "fr-FR, en;q=0.5, ja;q=0.7") == "ja"
    assert choose("xx", "de") == "en" and choose(None, "") == "en"
    assert choose(None, "ja;q=nonsense, en") == "en"


def test_labels_and_plurals_in_japanese() -> None:
    texts = Texts()
    texts.use("ja")
    assert texts.label("harassment") == "カスタマーハラスメント"
    assert texts.labels("agent_warning,long_call") == "オペレーターによる警告, 長時間通話"
    assert texts.ngettext("%(num)s call", "%(num)s calls", 3) == "%(num)s 件"
    texts.use("en")
    assert texts.label("harassment") == "harassment"


def test_every_outcome_and_treatment_the_forms_list_comes_from_the_contract_and_has_a_label(
        ) -> None:
    from archive.web.pages import TREATMENTS
    from callrec.manifest import OUTCOMES, Outcome, WrapUp
    from callrec.s3.marks import Treatment

    assert set(OUTCOMES) == {*Outcome, *WrapUp} and "refused" in OUTCOMES
    assert TREATMENTS[0] == Treatment.WARNING and set(TREATMENTS) == set(Treatment)
    texts = Texts()
    texts.use("ja")
    untranslated = [v for v in (*OUTCOMES, *TREATMENTS) if texts.label(v) == v]
    assert untranslated == []
