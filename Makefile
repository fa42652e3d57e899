# tokenlake: `make run` (whole pipeline on a generated sample) and `make test`.
# The virtualenv lives outside the clone and is reused; pip runs only when pyproject.toml (or the
# clone's location, for the editable install) changed.
SHELL := /bin/bash
VENV ?= $(or $(TOKENLAKE_VENV),$(HOME)/.cache/tokenlake/venv)
PY := $(VENV)/bin/python
SPEC_HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-16)-$(shell echo "$(CURDIR)" | sha256sum | cut -c1-8)
STAMP := $(VENV)/.tokenlake-$(SPEC_HASH)
SAMPLE ?= data/sample.jsonl
SAMPLE_DOCS ?= 4000
WORK ?= work
PYTEST_ARGS ?=
# the datatrove peer's environment (benchmarks/peer-requirements.txt): numpy >= 2, unlike ours
PEER_VENV ?= $(HOME)/.cache/tokenlake/peer-venv
PEER_STAMP := $(PEER_VENV)/.peer-$(shell cat benchmarks/peer-requirements.txt | sha256sum | cut -c1-16)

.PHONY: run test bench java venv peer-venv delta-jars class-archive lint clean chromium

run: venv delta-jars class-archive $(SAMPLE)
	$(VENV)/bin/tokenlake run --input $(SAMPLE) --work $(WORK)

test: venv delta-jars class-archive peer-venv chromium
	TOKENLAKE_PEER_PYTHON=$(PEER_VENV)/bin/python $(PY) -m pytest --durations=25 $(PYTEST_ARGS)

# Ratios against the ceilings and the single-machine peer (benchmarks/README.md); BENCH_MB sizes the corpus.
BENCH_MB ?= 200
bench: venv delta-jars class-archive peer-venv
	$(PY) -m tokenlake.benchmarks.run --mb $(BENCH_MB) --peer-python $(PEER_VENV)/bin/python

lint: venv
	$(VENV)/bin/ruff check etl training jobs expectations tests benchmarks synthetic

java:
	@command -v java >/dev/null || { echo "error: java not found on PATH; install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	  [ -n "$$v" ] && [ "$$v" -ge 17 ] || { echo "error: Java 17+ is required, found: $$(java -version 2>&1 | head -1)" >&2; exit 1; }

# The tests open the offline validation page in a headless browser: Debian's chromium.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get install -y -q chromium >/dev/null; \
	  else echo "error: chromium not found; install it (apt-get install chromium): the tests render a page in it" >&2; exit 1; fi; }

venv: java $(STAMP)

peer-venv: $(PEER_STAMP)

$(PEER_STAMP):
	@test -x $(PEER_VENV)/bin/python || python3 -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q -r benchmarks/peer-requirements.txt
	@rm -f $(PEER_VENV)/.peer-* && touch $@

$(STAMP):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,pretrained,bench,s3,export]"
	@rm -f $(VENV)/.tokenlake-* && touch $@

# Delta's JARs come through Spark's Ivy (~/.m2 first, then the Maven repository). If that fails,
# fill ~/.m2 with Maven and try again: Ivy then resolves from there.
delta-jars: venv
	@test -f $(VENV)/.delta-jars-ok || { \
	  $(PY) -m tokenlake.jobs.session --resolve-delta || { \
	    v=$$($(PY) -c 'import importlib.metadata as m; print(m.version("delta-spark"))'); \
	    echo "Ivy could not resolve Delta $$v; filling ~/.m2 with mvn dependency:get"; \
	    mvn -q dependency:get -Dartifact=io.delta:delta-spark_2.13:$$v && \
	    $(PY) -m tokenlake.jobs.session --resolve-delta; } && touch $(VENV)/.delta-jars-ok; }

# The local driver's classes in one class-data-sharing archive (jobs/class_archive.py): built once
# per Java, PySpark and Delta (about a minute), it saves each local run a few seconds.
class-archive: delta-jars
	@$(PY) -m tokenlake.jobs.class_archive >/dev/null

$(SAMPLE): | venv
	$(VENV)/bin/tokenlake generate --out $(SAMPLE) --docs $(SAMPLE_DOCS) --seed 0

# only what `make run` made: data/ is where users keep their own corpora
clean:
	rm -rf $(WORK) .pytest_cache
	rm -f $(SAMPLE)
	-rmdir data 2>/dev/null
