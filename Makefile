# physlm: `make book` builds the book from real runs, `make test` runs every check.
# Both create .venv with the pinned requirements on first use.

PYTHON ?= python3
VENV   ?= .venv
SCALE  ?= cpu
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test lint chapter render bench clean-book browser

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	$(BIN)/python -m physlm assets > /dev/null
	touch $(STAMP)

# Execute every chapter at $(SCALE) with papermill, then build the HTML.
book: $(STAMP)
	$(BIN)/python -m physlm book --scale $(SCALE)

# One chapter: make chapter NAME=part3_3_capacity SCALE=smoke
chapter: $(STAMP)
	$(BIN)/python -m physlm chapter $(NAME) --scale $(SCALE)

# Rebuild the HTML from the stored chapters, without executing them.
render: $(STAMP)
	$(BIN)/python -m physlm render

# Lint, unit tests, smoke runs of every notebook, the book build, and nbval on the
# published edition (which re-executes it at the scale it was published with).
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval-lax book/parts -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check physlm tests

bench: $(STAMP)
	$(BIN)/python -m physlm bench $(NAME)

# Headless Chromium and its driver for the real-browser test of the rendered book (Debian's
# packages; needs root or sudo once).
browser:
	@command -v chromium > /dev/null && command -v chromedriver > /dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver > /dev/null; }
