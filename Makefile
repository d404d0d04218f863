# kseries: two commands do all the set-up on a fresh Debian 12 or 13 machine.
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
# The names above are the same on Debian 12 (bookworm) and 13 (trixie).
# What only the tests add: a real sshd, LAVA's dispatcher, xmllint for the JUnit schema.
APT_TEST := openssh-server libxml2-utils
# LAVA's dispatcher (lava-run, for the LAVA tests) is installed without its Recommends:
# they are a whole lab's services (lxc, tftpd, nfs, a kernel image) that kseries never uses.
# Debian 13 has no lava-dispatcher: there bookworm's packages (architecture-independent
# Python, the same version as on 12) are fetched through kseries' own apt configuration
# and installed from the files, their dependencies from trixie (tool/debs.py).
LAVA_VERSION := 2023.01-2
LAVA_DEBS := lava-common lava-dispatcher lava-dispatcher-host
CODENAME := $(shell . /etc/os-release 2>/dev/null && echo $$VERSION_CODENAME)
ifeq ($(CODENAME),bookworm)
APT_TEST += lava-common
APT_LEAN := lava-dispatcher
LAVA_FROM :=
else
APT_LEAN :=
LAVA_FROM := bookworm
endif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps deps-run apt apt-run apt-install apt-lava apt-list venv lint typecheck \
	pytest patches bench clean

run: deps-run
	$(KSERIES) pipeline --base $(BASE)

# The emulated host's QEMU builds beside the tests (its tests run last and wait
# for it): most tests leave a core idle, and a cold build is ~10 minutes.
test: deps
	@echo "building the emulator beside the tests: $(VENV)/emulator-build.log"
	@nice -n 10 $(KSERIES) build --emulator > $(VENV)/emulator-build.log 2>&1 &
	@$(MAKE) --no-print-directory lint typecheck pytest

deps: apt venv apt-lava

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

# LAVA from another release (Debian 13): the pinned version, if dpkg does not have it.
apt-lava: venv
	@if [ -n "$(LAVA_FROM)" ] && [ "$$(dpkg-query -W -f='$${Version}' lava-dispatcher \
			2>/dev/null)" != "$(LAVA_VERSION)" ]; then \
		d=$$(mktemp -d) && chmod 755 $$d && \
		echo "apt-get install $(LAVA_DEBS) ($(LAVA_VERSION) from $(LAVA_FROM))" && \
		$(VENV)/bin/python tool/debs.py $(LAVA_FROM) $$d \
			$(foreach p,$(LAVA_DEBS),$(p)=$(LAVA_VERSION)) >/dev/null && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends $$d/*.deb >/dev/null; \
		rc=$$?; rm -rf $$d; exit $$rc; \
	fi

# What make installs on this release (CODENAME=trixie or bookworm for another): one line
# each for run, test, and LAVA's packages from another release (tests/test_packages.py).
apt-list:
	@echo "run: $(APT_RUN)"
	@echo "test: $(APT_TEST) $(APT_LEAN)"
	@echo "lava: $(if $(LAVA_FROM),$(LAVA_FROM) $(foreach p,$(LAVA_DEBS),$(p)=$(LAVA_VERSION)))"

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
