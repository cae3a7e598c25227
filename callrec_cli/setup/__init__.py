"""``callrec setup``: plug callrec into an existing Asterisk (plain or FreePBX) in one command.

It never rewrites an admin's own file: it writes its own files (under ``<etc>/callrec/``,
``/etc/callrec/``, the prompts, the units) and adds one include line per Asterisk file it needs
(``#tryinclude`` in ``http.conf``…, or in the ``*_custom.conf`` that FreePBX keeps across its
regenerations). A state file lists every file it created or changed, with the original bytes
of each changed one, so ``--undo`` puts the tree back byte for byte; a second run changes
nothing. ``--dry-run`` prints the whole change as a diff, secrets masked.
"""

from __future__ import annotations

from callrec import CallrecError


class SetupError(CallrecError):
    """Setup cannot go on (a missing module, a user that exists, a file changed since)."""
