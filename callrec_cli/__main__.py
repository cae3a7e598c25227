"""``python -m callrec_cli``: the same as the ``callrec`` command."""

from __future__ import annotations

import sys

from callrec_cli.main import main

sys.exit(main())
