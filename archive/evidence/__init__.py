"""Evidence: is the archive complete and unaltered (``verify.py`` with ``chains.py``), calls
handed over in bundles anyone can check (``bundle.py``, ``bundle_text.py``,
``bundle_check.py``), every call Asterisk logged has its trace (``reconcile.py``); the audited
actions (``desk.py``), which the doors call: the command line (archive/cli/evidence.py) and the
web UI (archive/web/evidence.py)."""
