"""``callrec setup``'s bookkeeping on a scratch tree: apply and undo are exact, an admin's later
edit survives the undo, the diff never shows a secret, the include goes where FreePBX keeps it,
and what setup cannot fix is refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from callrec_cli.setup import SetupError
from callrec_cli.setup.changes import (
    STATE_DIR,
    Applier,
    Change,
    Dir,
    File,
    Line,
    State,
    diff,
    undo,
)
from callrec_cli.setup.pbx import Listener, Pbx, refusals
from callrec_cli.setup.plan import Answers, Planner, parse_route
from callrec_cli.setup.tree import Tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setup chowns what it writes")


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    (tmp_path / "etc/asterisk").mkdir(parents=True)
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", tmp_path / "etc" / name)
    return Tree(tmp_path)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"/"
            for p in root.rglob("*")}


def test_undo_puts_back_every_byte(tree: Tree) -> None:
    admin = tree.root / "etc/asterisk/manager.conf"
    admin.write_bytes(b"[general]\nenabled = yes")  # no final newline
    before = files(tree.root)
    changes: list[Change] = [Dir("/etc/callrec"), File("/etc/callrec/a.toml", b"x = 1\n"),
               Line("/etc/asterisk/manager.conf", "#tryinclude \"callrec/setup/m.conf\""),
               Line("/etc/asterisk/manager_custom.conf", "#tryinclude \"x.conf\"")]
    done = Applier(tree, State(tree)).apply(changes)
    assert admin.read_bytes().endswith(b"enabled = yes\n#tryinclude \"callrec/setup/m.conf\"\n")
    assert len(done) == 4 and Applier(tree, State(tree)).apply(changes) == []
    _, kept = undo(tree, State(tree))
    assert kept == [] and files(tree.root) == before


def test_an_admins_later_edit_survives_the_undo(tree: Tree) -> None:
    admin = tree.root / "etc/asterisk/extensions.conf"
    admin.write_text("[from-trunk]\n")
    Applier(tree, State(tree)).apply([Line("/etc/asterisk/extensions.conf", "#tryinclude x"),
                                      File("/etc/callrec/own.toml", b"a\n")])
    admin.write_text(admin.read_text() + "exten => 1,1,Hangup()\n")
    (tree.root / "etc/callrec/own.toml").write_text("edited by the admin\n")
    done, kept = undo(tree, State(tree))
    assert admin.read_text() == "[from-trunk]\nexten => 1,1,Hangup()\n"
    assert kept == ["/etc/callrec/own.toml (changed since setup wrote it)",
                    "/etc/callrec/ (not empty: holds files setup did not write)"]
    assert not tree.host(STATE_DIR).exists() and done


def pbx(http: bool = False) -> Pbx:
    return Pbx(True, "22.10.1", "/etc/asterisk", "/var/spool/asterisk", "/usr/share/asterisk",
               http=Listener(http, "127.0.0.1", 8088), ami=Listener(True, "127.0.0.1", 5038))


def test_the_diff_masks_secrets_and_writes_nothing(tree: Tree) -> None:
    (tree.root / "etc/asterisk/ari.conf").write_text("[admin]\npassword = hunter2hunter2\n")
    planner = Planner(tree, pbx(), Answers(asterisk_user="root"))
    before = files(tree.root)
    shown = diff(tree, planner.changes(), planner.secrets)
    assert files(tree.root) == before
    assert "+password = ********" in shown and "+secret = ********" in shown
    assert all(s not in shown for s in [planner.ari_password, planner.ami_secret, "hunter2"])
    assert "+bindport = 8088" in shown  # the HTTP server was off: turned on, on loopback


def test_the_include_goes_into_freepbxs_custom_file(tree: Tree) -> None:
    etc = tree.root / "etc/asterisk"
    (etc / "cdr.conf").write_text("[general]\n#include cdr_general_custom.conf\n[csv]\n")
    (etc / "manager.conf").write_text("[general]\n#include manager_additional.conf\n"
                                      "#include manager_custom.conf\n")
    planner = Planner(tree, pbx(http=True), Answers(asterisk_user="root"))
    assert planner.hook("manager", "m").path == "/etc/asterisk/manager_custom.conf"
    assert planner.hook("ari", "a").path == "/etc/asterisk/ari.conf"
    includes = planner.includes()
    # [csv] is opened only after the custom include: a "(+)" there would not load
    assert "\n[csv]\n" in includes["cdr.conf"] and "http.conf" not in includes
    (etc / "cdr.conf").write_text("[csv]\nusegmtime = yes\n")
    assert "[csv](+)" in Planner(tree, pbx(True), Answers()).includes()["cdr.conf"]


def test_what_setup_cannot_fix_is_refused() -> None:
    old = pbx()
    old.version, old.missing = "18.20.0", ["app_mixmonitor.so"]
    problems = refusals(old)
    assert len(problems) == 2 and "app_mixmonitor.so" in problems[1]
    assert refusals(pbx()) == []
    with pytest.raises(SetupError):
        parse_route("0312345678=bad context")
    assert parse_route("0312345678=agents") == ("0312345678", ("agents", "s"))
