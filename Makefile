# podenv — one non-recursive GNU Makefile.
#
# Each module folder contributes <mod>/module.mk, which sets:
#   <mod>_SRCS  its sources          <mod>_PKGS  pkg-config names it needs
#   <mod>_DEPS  the modules it links against (for unit tests), in link order
# Every module becomes one archive $(O)/lib<mod>.a. Unit tests are found as
# tests/unit/<mod>/test_*.c, fuzz targets as tests/fuzz/fuzz_*.c.
#
# Variants live in their own object folder: `make O=build-asan SAN=1`.

O        ?= build
# One spelling per build folder: dependency files (-MMD) name their targets
# as the compiler saw them, so `O=/abs/build` (tests) and `O=build` must agree.
override O := $(patsubst $(CURDIR)/%,%,$(O))
# `make` alone builds everything (included .mk files define rules earlier).
.DEFAULT_GOAL := all
CC       ?= gcc
PREFIX   ?= /usr/local
DESTDIR  ?=
PYTHON   ?= /usr/bin/python3
V        ?= 0

ifeq ($(V),0)
Q = @
quiet = @printf '  %-7s %s\n' $(1) $(2);
else
Q =
quiet =
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
	-Wimplicit-fallthrough -Wno-format-truncation -Werror
ifneq ($(findstring clang,$(CC)),)
WARN += -Wno-unknown-warning-option
endif
# Messages are truncated to fixed buffers by design (struct err), hence no
# -Wformat-truncation.
OPT  ?= -O2 -g
ifeq ($(SAN),1)
OPT  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
endif
BASE_CFLAGS := -std=gnu17 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. $(WARN) $(OPT) -MMD -MP $(CFLAGS)
BASE_LDFLAGS := $(LDSAN) $(LDFLAGS)

MODULES := common proto config vfs vnet dns agent launcher
include $(wildcard $(addsuffix /module.mk,$(MODULES)))
# Test helpers built like programs (tests/cluster/build.mk adds to TEST_PROGRAMS).
TEST_PROGRAMS :=
include $(wildcard tests/*/build.mk)

pkg_cflags = $(if $(1),$(shell pkg-config --cflags $(1)))
pkg_libs   = $(if $(1),$(shell pkg-config --libs $(1)))

# --- archives ---------------------------------------------------------------
define compile_rule
$(O)/$(1)/%.o: $(1)/%.c
	$$(call quiet,CC,$$@)
	$(Q)mkdir -p $$(@D)
	$(Q)$$(CC) $$(BASE_CFLAGS) $$(call pkg_cflags,$$(call mod_pkgs,$(1))) -c -o $$@ $$<
endef
define archive_rule
$(1)_OBJS := $$(patsubst %.c,$(O)/%.o,$$($(1)_SRCS))
$(O)/lib$(1).a: $$($(1)_OBJS)
	$$(call quiet,AR,$$@)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
LIB_MODULES := $(foreach m,$(MODULES),$(if $($(m)_SRCS),$(m)))
$(foreach m,$(MODULES),$(eval $(call compile_rule,$(m))))
$(foreach m,$(LIB_MODULES),$(eval $(call archive_rule,$(m))))

# Link line for a module: its archive, then its dependencies' archives.
mod_archives = $(foreach m,$(1) $($(1)_DEPS),$(if $($(m)_SRCS),$(O)/lib$(m).a))
mod_pkgs     = $(sort $(foreach m,$(1) $($(1)_DEPS),$($(m)_PKGS)))

# --- programs ---------------------------------------------------------------
PROGRAMS := $(O)/podenv $(O)/podenv-agent
all: $(PROGRAMS) $(O)/probe $(TEST_PROGRAMS)
.PHONY: all

# Programs: <dir>/main.c plus the archives; main.c stays out of the archive
# so that unit tests can link the rest of the program's code.
$(O)/podenv: $(O)/launcher/main.o $(call mod_archives,launcher)
	$(call quiet,LD,$@)
	$(Q)$(CC) $(BASE_LDFLAGS) -o $@ $^ $(call pkg_libs,$(call mod_pkgs,launcher)) $(launcher_LIBS)
$(O)/podenv-agent: $(O)/agent/main.o $(call mod_archives,agent)
	$(call quiet,LD,$@)
	$(Q)$(CC) $(BASE_LDFLAGS) -o $@ $^ $(call pkg_libs,$(call mod_pkgs,agent)) $(agent_LIBS)

# The probe runs inside sandboxes and pods (tests/README); static so it
# needs nothing from the filesystem it lands on.
$(O)/probe: tests/probe/probe.c
	$(call quiet,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -std=gnu17 -D_GNU_SOURCE $(WARN) -O2 -static -o $@ $<

# --- unit tests -------------------------------------------------------------
UNIT_SRCS := $(foreach m,$(MODULES),$(wildcard tests/unit/$(m)/test_*.c))
UNIT_BINS := $(patsubst %.c,$(O)/%,$(UNIT_SRCS))
unit_mod = $(word 3,$(subst /, ,$(1)))

define unit_rule
$(O)/$(basename $(1)): $(1) tests/unit/tap.h $(call mod_archives,$(call unit_mod,$(1)))
	$$(call quiet,CC,$$@)
	$(Q)mkdir -p $$(@D)
	$(Q)$$(CC) $$(BASE_CFLAGS) $$(call pkg_cflags,$$(call mod_pkgs,$(call unit_mod,$(1)))) \
		$(BASE_LDFLAGS) -o $$@ $$< $(call mod_archives,$(call unit_mod,$(1))) \
		$$(call pkg_libs,$$(call mod_pkgs,$(call unit_mod,$(1)))) $$($(call unit_mod,$(1))_LIBS)
endef
$(foreach t,$(UNIT_SRCS),$(eval $(call unit_rule,$(t))))

# --- fuzz targets -------------------------------------------------------------
# Each tests/fuzz/fuzz_<t>.c declares `FUZZ_MODULE <mod>` on its first line.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
fuzz_mod = $(shell sed -n '1s/.*FUZZ_MODULE \([a-z]*\).*/\1/p' $(1))
FUZZ_TIME ?= 20

# Replay binaries (gcc, this variant's flags) run the committed corpus in `make check`.
define fuzz_replay_rule
$(O)/$(basename $(1))_replay: $(1) tests/fuzz/replay.c $(call mod_archives,$(call fuzz_mod,$(1)))
	$$(call quiet,CC,$$@)
	$(Q)mkdir -p $$(@D)
	$(Q)$$(CC) $$(BASE_CFLAGS) $(BASE_LDFLAGS) -o $$@ $(1) tests/fuzz/replay.c \
		$(call mod_archives,$(call fuzz_mod,$(1))) \
		$$(call pkg_libs,$$(call mod_pkgs,$(call fuzz_mod,$(1))))
endef
$(foreach f,$(FUZZ_SRCS),$(eval $(call fuzz_replay_rule,$(f))))
FUZZ_REPLAYS := $(patsubst %.c,$(O)/%_replay,$(FUZZ_SRCS))

units: $(UNIT_BINS) $(FUZZ_REPLAYS)
.PHONY: units

unit: units
	$(Q)$(PYTHON) tests/run.py unit --build $(O)
.PHONY: unit

e2e: all
	$(Q)$(PYTHON) tests/run.py e2e --build $(O)
.PHONY: e2e

# check and demo set themselves up (README): deps first, then the build.
check: deps
	$(Q)$(MAKE) --no-print-directory all units
	$(Q)$(PYTHON) tests/run.py all --build $(O)
.PHONY: check

asan:
	$(Q)$(MAKE) --no-print-directory O=build-asan SAN=1 units
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$(PYTHON) tests/run.py unit --build build-asan
.PHONY: asan

fuzz:
	$(Q)$(MAKE) --no-print-directory O=build-fuzz CC=clang \
		OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
		LDSAN="-fsanitize=address,undefined" $(addprefix build-fuzz/lib,$(addsuffix .a,$(LIB_MODULES)))
	$(Q)set -e; for f in $(FUZZ_SRCS); do \
		t=$$(basename $$f .c); m=$$(sed -n '1s/.*FUZZ_MODULE \([a-z]*\).*/\1/p' $$f); \
		archs=""; for d in $$m $$($(MAKE) -s --no-print-directory print-deps M=$$m); do \
			[ -f build-fuzz/lib$$d.a ] && archs="$$archs build-fuzz/lib$$d.a"; done; \
		libs=$$($(MAKE) -s --no-print-directory print-libs M=$$m); \
		echo "  FUZZ    $$t ($(FUZZ_TIME)s)"; \
		clang -std=gnu17 -D_GNU_SOURCE -I. -O1 -g -fsanitize=fuzzer,address,undefined \
			-o build-fuzz/$$t $$f $$archs $$libs; \
		mkdir -p tests/fuzz/corpus/$$t build-fuzz/corpus/$$t; \
		build-fuzz/$$t -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=10 \
			build-fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>&1 | tail -n 3; \
	done
.PHONY: fuzz

print-deps:
	@echo $($(M)_DEPS)
print-libs:
	@echo $(call pkg_libs,$(call mod_pkgs,$(M))) $($(M)_LIBS)
.PHONY: print-deps print-libs

# --- helpers ----------------------------------------------------------------
DEPS_PKGS := build-essential pkg-config clang libclang-rt-14-dev \
	libfuse3-dev fuse3 libnl-route-3-dev libnl-3-dev libjson-c-dev libyaml-dev \
	libcurl4-openssl-dev libssl-dev libc-ares-dev libpcre2-dev \
	iproute2 busybox-static dnsmasq-base python3 python3-pytest \
	procps psmisc curl dnsutils socat tmux clang-format hyperfine bindfs sshfs openssh-server \
	iperf3 dnsperf slirp4netns wrk strace linux-perf iptables nftables \
	debhelper lintian devscripts dpkg-dev fakeroot man-db zsh fish

deps:
	$(Q)missing=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(DEPS_PKGS) 2>/dev/null \
		| awk '$$1 == "ii" { print $$2 }' | sort > /tmp/podenv-have.$$$$; \
		for p in $(DEPS_PKGS); do grep -qx "$$p" /tmp/podenv-have.$$$$ || echo $$p; done; \
		rm -f /tmp/podenv-have.$$$$); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all installed"; fi
.PHONY: deps

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/demo.sh $(O)
.PHONY: demo

# --- packaging (packaging/) ------------------------------------------------
# The config schema and podenv-config(5) both come from `podenv config
# schema`, i.e. from config/schema.c's one table, so they cannot drift.
VERSION = $(shell sed -n 's/^#define PODENV_VERSION "\(.*\)"/\1/p' launcher/cli.h)
MANDIR  ?= $(PREFIX)/share/man
$(O)/share/mirrord-config.schema.json: $(O)/podenv
	$(call quiet,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(O)/podenv config schema > $@.tmp && mv $@.tmp $@
$(O)/share/man/podenv-config.5: $(O)/share/mirrord-config.schema.json packaging/gen-config-man.py
	$(call quiet,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(PYTHON) packaging/gen-config-man.py $(VERSION) $< > $@.tmp && mv $@.tmp $@
$(O)/share/man/%: packaging/man/%
	$(Q)mkdir -p $(@D)
	$(Q)sed 's/^\(\.TH .*\) "podenv" /\1 "podenv $(VERSION)" /' $< > $@
MAN_PAGES := $(O)/share/man/podenv.1 $(O)/share/man/podenv-agent.8 $(O)/share/man/podenv-config.5
man: $(MAN_PAGES) $(O)/share/mirrord-config.schema.json
.PHONY: man

# install-files installs what is built; install builds everything first.
install: all install-files
install-files: $(PROGRAMS) man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(PREFIX)/share/podenv \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(O)/podenv $(O)/podenv-agent $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(O)/share/man/podenv.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(O)/share/man/podenv-config.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(O)/share/man/podenv-agent.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(O)/share/mirrord-config.schema.json $(DESTDIR)$(PREFIX)/share/podenv/
	install -m 0644 packaging/completions/podenv.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/podenv
	install -m 0644 packaging/completions/_podenv $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/
	install -m 0644 packaging/completions/podenv.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/podenv $(DESTDIR)$(PREFIX)/bin/podenv-agent \
		$(DESTDIR)$(MANDIR)/man1/podenv.1 $(DESTDIR)$(MANDIR)/man5/podenv-config.5 \
		$(DESTDIR)$(MANDIR)/man8/podenv-agent.8 \
		$(DESTDIR)$(PREFIX)/share/podenv/mirrord-config.schema.json \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/podenv \
		$(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_podenv \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/podenv.fish
	-rmdir $(DESTDIR)$(PREFIX)/share/podenv 2>/dev/null
.PHONY: install install-files uninstall

# make agent-static: podenv-agent linked statically against Debian's static
# libraries (libc6-dev, libc-ares-dev, libssl-dev, libjson-c-dev,
# libpcre2-dev, libyaml-dev all ship .a files), for the agent image.
$(O)/podenv-agent-static: $(O)/agent/main.o $(call mod_archives,agent)
	$(call quiet,LD,$@)
	$(Q)$(CC) $(BASE_LDFLAGS) -static -o $@ $^ \
		$(shell pkg-config --static --libs $(call mod_pkgs,agent)) $(agent_LIBS) 2> $@.log \
		|| { cat $@.log; exit 1; }
	$(Q)grep -v 'statically linked applications requires at runtime' $@.log | grep -v 'in function' >&2 || true
agent-static: $(O)/podenv-agent-static
# make agent-image: an OCI image archive (packaging/agent-image.sh), offline,
# named AGENT_IMAGE: the default agent.image (config/target.c).
AGENT_IMAGE = localhost/podenv-agent:$(VERSION)
$(O)/podenv-agent-oci.tar: $(O)/podenv-agent-static packaging/agent-image.sh
	$(call quiet,OCI,$@)
	$(Q)packaging/agent-image.sh $< $@ $(AGENT_IMAGE)
agent-image: $(O)/podenv-agent-oci.tar
.PHONY: agent-static agent-image

# make bench: every bench/*.sh (BENCH= picks some: BENCH="config_load vfs_route")
# with this build folder, by bench/run.py, which rewrites bench/RESULTS.md
# (sections of benchmarks not picked are kept) and keeps each script's output
# and log in $(O)/bench-results/. How a script plugs in: bench/README.md.
# agent, exec and net need root and start their own mini cluster.
BENCH ?=
bench: all
	$(Q)$(PYTHON) bench/run.py $(O) $(BENCH)
.PHONY: bench

# make deb: dpkg-buildpackage in a temporary copy of the tree (tracked and
# untracked-but-not-ignored files) with packaging/debian as debian/; the
# results land in $(DEB_DIR).
DEB_DIR ?= build-deb
deb:
	$(Q)set -e; t=$$(mktemp -d /tmp/podenv-deb.XXXXXX); trap 'rm -rf "$$t"' EXIT; \
	src=$$t/podenv-$(VERSION); mkdir -p $$src; \
	git ls-files -z -co --exclude-standard | tar -c --null -T - --ignore-failed-read -f - | tar -x -C $$src; \
	rm -rf $$src/debian; cp -r packaging/debian $$src/debian; \
	(cd $$src && dpkg-buildpackage -us -uc -b) > $$t/build.log 2>&1 || { tail -n 40 $$t/build.log; exit 1; }; \
	mkdir -p $(DEB_DIR); cp $$t/*.deb $$t/*.buildinfo $$t/*.changes $$t/build.log $(DEB_DIR)/; \
	for d in $$t/*.deb; do echo "  DEB     $(DEB_DIR)/$$(basename $$d)"; done
lintian: deb
	lintian --info $(DEB_DIR)/podenv_*.deb
.PHONY: deb lintian

SOURCES := $(shell find $(MODULES) tests -name '*.[ch]' -not -path 'tests/fuzz/corpus/*' 2>/dev/null)
format:
	clang-format -i $(SOURCES)
format-check:
	clang-format --dry-run -Werror $(SOURCES)
lint:
	$(Q)tests/lint.sh
.PHONY: format format-check lint

clean:
	rm -rf build build-*
.PHONY: clean

-include $(shell find $(O) -name '*.d' 2>/dev/null)
