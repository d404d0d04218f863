# kseries: two commands do all the set-up on a fresh Debian 12 machine.
#   make run    render, check, build, run and prepare the series on the default base
#   make test   lint, type-check and run the tests
# Both install what they need: Debian packages (apt-get) and a venv in .venv.

PYTHON  ?= python3
VENV    ?= .venv
BASE    ?= debian:6.12
KSERIES := $(VENV)/bin/kseries
# The emulated host's QEMU, built from Debian's source: dpkg-source unpacks it,
# ninja builds it, and what its x86_64-softmmu needs (meson comes from the venv).
APT_EMULATOR := dpkg-dev patch ninja-build pkg-config libglib2.0-dev zlib1g-dev libfdt-dev
# What `make run` needs: the kernel build, sparse and Sphinx for the checks, QEMU and
# busybox for the guests, ssh and git-email for lab machines and the mails, and the
# build of the emulated host's QEMU.
APT_RUN := git make gcc flex bison bc libelf-dev libssl-dev perl cpio xz-utils \
	python3-venv qemu-system-x86 busybox-static ccache dwarves gdb \
	openssh-client git-email rsync sparse python3-sphinx python3-yaml \
	$(APT_EMULATOR)
# What only the tests add: a real sshd, LAVA's dispatcher, xmllint for the JUnit schema.
APT_TEST := openssh-server lava-common libxml2-utils
# Installed without their Recommends: lava-dispatcher (lava-run, for the LAVA tests)
# recommends a whole lab's services (lxc, tftpd, nfs, a kernel image) that kseries never uses.
APT_LEAN := lava-dispatcher
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps deps-run apt apt-run apt-install venv lint typecheck pytest patches bench clean

run: deps-run
	$(KSERIES) pipeline --base $(BASE)

# The emulated host's QEMU builds beside the tests (its tests run last and wait
# for it): most tests leave a core idle, and a cold build is ~10 minutes.
test: deps
	@echo "building the emulator beside the tests: $(VENV)/emulator-build.log"
	@nice -n 10 $(KSERIES) build --emulator > $(VENV)/emulator-build.log 2>&1 &
	@$(MAKE) --no-print-directory lint typecheck pytest

deps: apt venv

deps-run: apt-run venv

# Install the Debian packages that are missing (no apt-get update when none is):
# `apt` all of them, `apt-run` only what `make run` needs.
apt:
	@$(MAKE) -s apt-install FULL="$(APT_RUN) $(APT_TEST)" LEAN="$(APT_LEAN)"

apt-run:
	@$(MAKE) -s apt-install FULL="$(APT_RUN)" LEAN=""

apt-install:
	@missing() { for p in "$$@"; do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; \
	done; }; \
	full=$$(missing $(FULL)); lean=$$(missing $(LEAN)); \
	if [ -n "$$full$$lean" ]; then \
		echo "apt-get install $$full $$lean"; \
		$(SUDO) apt-get update -qq && \
		{ [ -z "$$full" ] || DEBIAN_FRONTEND=noninteractive \
			$(SUDO) apt-get install -y -qq $$full >/dev/null; } && \
		{ [ -z "$$lean" ] || DEBIAN_FRONTEND=noninteractive \
			$(SUDO) apt-get install -y -qq --no-install-recommends $$lean >/dev/null; }; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

lint:
	$(VENV)/bin/ruff check setup.py tool tests $(wildcard bench/*)

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/pytest -ra --durations=25

# Regenerate the committed golden series: patches/SERIES/BASE, for both
# series and both pinned Debian bases.
SERIES_NAMES := v2 merged
patches: deps
	for s in $(SERIES_NAMES); do \
		for b in 6.12 6.1; do \
			$(KSERIES) render --series $$s --base debian:$$b -o patches/$$s/debian-$$b || exit 1; \
		done; \
	done

bench: deps
	$(VENV)/bin/python bench/render

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
