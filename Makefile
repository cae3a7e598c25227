# callrec - see README.md. `make demo` runs it locally, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help deps venv dist chroot prompts i18n sounds-install lint typecheck test bench chaos demo demo-call sandbox-up sandbox-down sandbox-status \
        sandbox-clean clean

help:
	@echo "make demo          bring up the PBX sandbox and S3 locally and show how to reach them"
	@echo "make test          run the tests (unit + integration against the real bench)"
	@echo "make chaos [MINUTES=10]  the soak under faults, audited (not part of make test)"
	@echo "make lint | typecheck | bench | sandbox-up | sandbox-down | sandbox-clean | clean"

deps:
	@scripts/install-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

# The wheel and the sdist a PBX host installs (pip install callrec-*.whl, then callrec setup):
# the services with the dialplan, the prompts, the units and the example config as package data.
DIST ?= dist
dist: $(STAMP)
	$(BIN)/python -m build --outdir $(DIST) .

# ruff, and the layer contract (pyproject.toml [tool.importlinter]): an import that points up a
# layer, or one service importing another, fails here.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Builds the Asterisk chroot (cached) outside pytest, so a slow mirror cannot eat a test's timeout.
chroot: deps $(STAMP)
	@$(BIN)/python -m testbench build >/dev/null

# pytest exits 5 when it collected no test: say so instead of failing on it.
test: chroot
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

bench: deps $(STAMP)
	$(BIN)/python -m bench

# The soak under faults (bench/chaos.py; not part of make test): make chaos MINUTES=10
MINUTES ?= 10
chaos: chroot
	$(BIN)/python -m bench.chaos --minutes $(MINUTES)

demo: chroot
	$(BIN)/python -m testbench demo --instance demo

# One more call into the running demo (make demo first), followed until it is archived.
demo-call: $(STAMP)
	$(BIN)/python -m testbench call --instance demo

sandbox-up: deps $(STAMP)
	$(BIN)/python -m testbench up --instance demo

# The demo instance only: a test run (instance "test") may be using the other one.
sandbox-down: $(STAMP)
	$(BIN)/python -m testbench down --instance demo

sandbox-status: $(STAMP)
	$(BIN)/python -m testbench status --instance demo

# Removes the cached chroot and the bench's state (S3 data, logs) outside the work tree.
sandbox-clean: sandbox-down
	$(BIN)/python -m testbench down --instance test
	$(BIN)/python -m testbench clean

# The web UI's texts: extract them into the template and update each language's catalog
# (archive/locale/<lang>/LC_MESSAGES/messages.po, where translators work; archive/web/i18n.py).
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k ngettext:1,2 --no-location --sort-output \
	    --project callrec -o archive/locale/messages.pot .
	$(BIN)/pybabel update -i archive/locale/messages.pot -d archive/locale --no-fuzzy-matching

# Regenerate the prompts (sounds/make_prompts.py; Japanese needs the `prompts` extra).
prompts: $(STAMP)
	$(BIN)/pip install -q -e '.[prompts]'
	$(BIN)/python sounds/make_prompts.py

# Install the prompts where Asterisk looks: $(SOUNDS_DIR)/<lang>/callrec/. Then, so that ARI's
# sound index sees them: asterisk -rx "module reload"
SOUNDS_DIR ?= /usr/share/asterisk/sounds
sounds-install:
	@for lang in sounds/*/callrec; do l=$$(basename $$(dirname $$lang)); \
	  install -d $(SOUNDS_DIR)/$$l/callrec && install -m 0644 $$lang/* $(SOUNDS_DIR)/$$l/callrec/ \
	  && echo "installed $(SOUNDS_DIR)/$$l/callrec"; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
