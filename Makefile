# celery-composer — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/celery-composer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test-deps: pyproject.toml $(BIN)/celery-composer
	$(BIN)/pip install -q -e '.[test,lint,clouds,oci]'
	@touch $@

.PHONY: venv
venv: $(BIN)/celery-composer ## Create the virtualenv with the service installed

.PHONY: run
run: venv ## Start the API on its socket (embedded defaults; no Redis needed)
	$(BIN)/celery-composer serve $(ARGS)

.PHONY: debian-deps
debian-deps: ## Install the Debian packages the tests need (tests/debian-packages.txt)
	@missing=$$(grep -v '^#' tests/debian-packages.txt | while read -r p; do [ -z "$$p" ] || dpkg -s "$$p" >/dev/null 2>&1 || echo "$$p"; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Azurite (Azure Storage emulator) for the uploader tests: npm, into a local node_modules/ (gitignored)
AZURITE_VERSION ?= 3.35.0
node_modules/.bin/azurite-blob:
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	npm install --no-save --no-audit --no-fund --prefix $(CURDIR) azurite@$(AZURITE_VERSION)

.PHONY: test-deps
test-deps: debian-deps $(VENV)/.test-deps node_modules/.bin/azurite-blob ## Install everything the tests need

.PHONY: lint
lint: $(VENV)/.test-deps ## ruff and mypy over the project (configuration in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy

# the store, API and pipeline tests run a second time on PostgreSQL (127.0.0.1:5432, user postgres,
# trust; .ci/run starts one); the whole suite runs on the embedded SQLite default
PG_TESTS ?= tests/api/test_store.py tests/api/test_database.py tests/api/test_compose.py \
	tests/api/test_compose_queue.py tests/blueprints/test_store.py tests/blueprints/test_routes.py \
	tests/pipeline/test_chain.py tests/pipeline/test_faults.py
.PHONY: test
test: test-deps lint ## Install what the tests need, lint, and run the tests (SQLite, then the store's on PostgreSQL)
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) test-postgresql

.PHONY: test-postgresql
test-postgresql: test-deps ## Run the store, API and pipeline tests on PostgreSQL (TEST_POSTGRESQL_URL)
	TEST_DATABASE=postgresql $(BIN)/pytest $(PYTEST_ARGS) $(PG_TESTS)

MANIFESTS_OUT ?= /tmp/celery-composer-manifests
.PHONY: manifest-checksums
manifest-checksums: venv ## osbuild/images' 1,929 mock test manifests by our engine vs its sha1s (ARGS="--distro rhel-9.6")
	$(BIN)/celery-composer gen-manifests --mock --check --output $(MANIFESTS_OUT) $(ARGS)

OLD ?= main
DIFF_DIR := $(MANIFESTS_OUT)/diff
.PHONY: manifest-diff
manifest-diff: venv ## Manifest differences of every distro/arch/type (empty + customized blueprint) from git revision OLD (default main) to this tree
	rm -rf $(DIFF_DIR) && mkdir -p $(DIFF_DIR)
	git worktree add --detach $(DIFF_DIR)/src $(OLD) >/dev/null
	cd $(DIFF_DIR)/src && PYTHONPATH=$(DIFF_DIR)/src $(abspath $(BIN))/python $(CURDIR)/distros/manifestdiff.py dump $(DIFF_DIR)/old; \
	  status=$$?; git -C $(CURDIR) worktree remove --force $(DIFF_DIR)/src; exit $$status
	PYTHONPATH=$(CURDIR) $(BIN)/python distros/manifestdiff.py dump $(DIFF_DIR)/new
	PYTHONPATH=$(CURDIR) $(BIN)/python distros/manifestdiff.py compare $(DIFF_DIR)/old $(DIFF_DIR)/new

.PHONY: bench-api
bench-api: venv ## API benchmark: req/s, p50/p99 over the socket, 1,000 blueprints + 10,000 composes, vs an empty route
	$(BIN)/python bench/api.py $(ARGS)

.PHONY: bench-depsolve
bench-depsolve: venv ## Depsolve benchmark vs dnf 4 (installs Debian's python3-dnf for the peer)
	@dpkg -s python3-dnf >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-dnf; }
	$(BIN)/python bench/depsolve.py $(ARGS)

.PHONY: bench-queue
bench-queue: venv ## Queue benchmark: 500 test-mode composes through the pipeline, Redis, 2 workers
	$(BIN)/python bench/queue.py $(ARGS)

.PHONY: bench-build
bench-build: venv ## Build benchmark: the same compose twice with real osbuild (ARGS='--osbuild CMD'; needs root)
	$(BIN)/python bench/build.py $(ARGS)

.PHONY: flower
flower: venv ## Flower on 127.0.0.1:5555 for the configured (Redis) broker; installs the flower extra
	$(BIN)/pip install -q -e '.[flower]'
	$(BIN)/python -m tasks.flower $(ARGS)

# Installation layout; `make install DESTDIR=/tmp/root PREFIX=/usr` for packaging.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc
DATADIR ?= $(PREFIX)/share
UNITS := $(wildcard systemd/*.socket systemd/*.service)

.PHONY: install
install: ## Install systemd units, sysusers entry, repository definitions and example config under DESTDIR/PREFIX
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/celery-composer
	for unit in $(UNITS); do \
		sed 's|/usr/bin/celery-composer|$(BINDIR)/celery-composer|g' $$unit > $(DESTDIR)$(UNITDIR)/$$(basename $$unit); \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$unit); \
	done
	install -m 0644 systemd/celery-composer.sysusers $(DESTDIR)$(SYSUSERSDIR)/celery-composer.conf
	install -d $(DESTDIR)$(DATADIR)/celery-composer/repositories
	install -m 0644 repositories/*.json $(DESTDIR)$(DATADIR)/celery-composer/repositories/
	@# an existing configuration is the admin's: never overwrite it
	[ -e $(DESTDIR)$(SYSCONFDIR)/celery-composer/celery-composer.toml ] || \
		install -m 0644 conf/celery-composer.toml $(DESTDIR)$(SYSCONFDIR)/celery-composer/celery-composer.toml

.PHONY: install-python
install-python: ## Install the celery-composer command itself under DESTDIR/PREFIX (pip)
	@# --ignore-installed: never uninstall a copy the running Python already has (e.g. a venv's)
	$(PYTHON) -m pip install --no-deps --ignore-installed --root "$(if $(DESTDIR),$(DESTDIR),/)" --prefix $(PREFIX) .

.PHONY: uninstall
uninstall: ## Remove what `make install` put in place (the configuration stays)
	for unit in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$(basename $$unit); done
	rm -f $(DESTDIR)$(SYSUSERSDIR)/celery-composer.conf
	rm -rf $(DESTDIR)$(DATADIR)/celery-composer/repositories

.PHONY: bench-upload
bench-upload: test-deps ## Upload benchmark: bytes on the wire and speed vs SDK baselines (Azurite, moto, GCS emulator, registry)
	$(BIN)/python bench/upload.py $(ARGS)

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache build *.egg-info
