# ec2-net-utils — build, test, demo.
#
# Safety: every target that runs the agent does so inside a lab network namespace, where
# 169.254.169.254 is the lab's own fake IMDS. Nothing here talks to the machine's real IMDS.

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO        ?= go
GOFLAGS   ?=
BIN       := bin/ec2-net-utils
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Packages add -buildmode=pie and -B gobuildid (a GNU build-id note from the Go build ID).
AGENT_BUILDFLAGS ?=
EXTRA_LDFLAGS ?=
STATICCHECK_VERSION ?= v0.8.2
# The backend (and network manager) the demo and the benchmark run: networkd, networkmanager, ifcfg.
BACKEND   ?= networkd

.PHONY: all build agent test unit-test lab-test lint fmt fuzz fuzz-short demo bench clean install dist rpm deb package-test

all: build

build: agent
	$(GO) build -trimpath -o bin/ec2-net-utils-lab ./cmd/ec2-net-utils-lab

# The agent alone: what the packages ship.
agent:
	$(GO) build $(AGENT_BUILDFLAGS) -trimpath -ldflags '$(LDFLAGS) $(EXTRA_LDFLAGS)' -o $(BIN) ./cmd/ec2-net-utils

# Unit tests need no root; lab tests (real systemd-networkd, NetworkManager and dhclient in
# network namespaces) run as root and skip with a message otherwise. -p 1 keeps the lab suites
# from fighting over 2 cores.
test: lint fuzz-short
	$(GO) test -count=1 -p 1 -timeout 25m ./...

# Go native fuzz targets, package:function. Their seed corpora (the goldens, scenarios and every
# past finding, kept under testdata/fuzz/) also run as plain tests in `go test`. `make test` fuzzes
# each briefly; `make fuzz` longer. A finding is written to the package's testdata/fuzz/<target>/:
# fix it and commit the file, which then stays a seed.
FUZZ_TARGETS := \
	./core:FuzzParseAndPlan \
	./core:FuzzENIValue \
	./core/imds:FuzzListLines \
	./core/imds:FuzzBoundedBody \
	./conf:FuzzLoad \
	./backends/ifcfg:FuzzParseKnobs \
	./backends/ifcfg:FuzzOwnership \
	./backends/networkd:FuzzStateValue \
	./backends/networkmanager:FuzzMerge
FUZZTIME       ?= 60s
FUZZTIME_SHORT ?= 3s

# go test takes one -fuzz pattern per run, hence the loop.
define run-fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t##*:} in $${t%%:*} for $(1)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(1) $${t%%:*}; \
	done
endef

fuzz-short:
	$(call run-fuzz,$(FUZZTIME_SHORT))

fuzz:
	$(call run-fuzz,$(FUZZTIME))

unit-test:
	$(GO) test -count=1 -short ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt: not formatted: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# The demo builds a simulated VPC in network namespaces, runs the daemon in it with the real
# network manager of $(BACKEND), attaches an ENI, adds a secondary IP, shows what a user would
# see, detaches and cleans up. Root only.
demo: build
	./bin/ec2-net-utils-lab demo --agent $(BIN) --backend $(BACKEND)

# The Go benchmarks (planner at 1..32 ENIs x 50 addresses + 4 prefixes, plan reuse on an
# unchanged refresh, the IMDS refresh), then the lab figures at BENCH_ENIS ENIs (the small size by
# default; 8, or 32 over two network cards, for the others): boot -> routed, hot attach -> routed,
# one secondary IP -> applied, IMDS requests and reloads per no-change refresh, idle CPU and RSS
# (docs/performance.md).
BENCH_ENIS     ?= 2
BENCH_IPS      ?= 50
BENCH_PREFIXES ?= 4
BENCH_IDLE     ?= 60s
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./core/ ./core/reconcile/ ./core/imds/
	./bin/ec2-net-utils-lab bench --agent $(BIN) --backend $(BACKEND) --enis $(BENCH_ENIS) \
	  --ips $(BENCH_IPS) --prefixes $(BENCH_PREFIXES) --idle $(BENCH_IDLE)

clean:
	rm -rf bin dist

# ---- Install and packages (docs/packaging.md) ------------------------------------------------
#
# `make agent && make install DESTDIR=...` lays out exactly what both packages ship; the RPM spec
# and debian/rules call it, so the two packages cannot disagree on paths. Files the backends
# add are picked up by directory: everything under packaging/NetworkManager/ goes to
# $(NMDIR)/ (conf.d/*.conf, system-connections/*.nmconnection with mode 0600, as
# NetworkManager requires), and packaging/libexec/* to $(LIBEXECDIR)/ec2-net-utils/.
PREFIX      ?= /usr
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBEXECDIR  ?= $(PREFIX)/libexec
SYSCONFDIR  ?= /etc
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
PRESETDIR   ?= $(PREFIX)/lib/systemd/system-preset
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
NETWORKDIR  ?= $(PREFIX)/lib/systemd/network
NETWORKDCONFDIR ?= $(PREFIX)/lib/systemd/networkd.conf.d
NMDIR       ?= $(PREFIX)/lib/NetworkManager
SYSCTLDIR   ?= $(PREFIX)/lib/sysctl.d
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# 1 adds the unit drop-in the ifcfg backend needs (dhclient: raw sockets, port 68, its files),
# and writes the drop-in's capability set into the unit itself: systemd 219 (Amazon Linux 2,
# CentOS 7, this backend's hosts) intersects CapabilityBoundingSet= lines, so a drop-in cannot
# widen it there.
WITH_IFCFG  ?= 0
DESTDIR     ?=

install:
	@test -x $(BIN) || { echo "install: $(BIN) missing: run make agent first" >&2; exit 1; }
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/ec2-net-utils
	install -D -m 0644 packaging/ec2-net-utils.conf $(DESTDIR)$(SYSCONFDIR)/ec2-net-utils.conf
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PRESETDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)$(NETWORKDIR) $(DESTDIR)$(NETWORKDCONFDIR) $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0644 packaging/systemd/system/*.service $(DESTDIR)$(UNITDIR)/
	install -m 0644 packaging/systemd/system-preset/*.preset $(DESTDIR)$(PRESETDIR)/
	install -m 0644 packaging/systemd/tmpfiles.d/*.conf $(DESTDIR)$(TMPFILESDIR)/
	install -m 0644 packaging/systemd/network/*.network $(DESTDIR)$(NETWORKDIR)/
	install -m 0644 packaging/systemd/networkd.conf.d/*.conf $(DESTDIR)$(NETWORKDCONFDIR)/
	install -D -m 0644 -t $(DESTDIR)$(SYSCTLDIR) packaging/sysctl.d/*.conf
	install -D -m 0644 -t $(DESTDIR)$(UDEVRULESDIR) packaging/udev/rules.d/*.rules
	install -m 0644 packaging/man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 packaging/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	set -e; if [ -d packaging/NetworkManager ]; then cd packaging/NetworkManager && \
	  find . -type f | while read -r f; do case "$$f" in \
	    *.nmconnection) mode=0600 ;; *) mode=0644 ;; esac; \
	    install -D -m $$mode "$$f" "$(DESTDIR)$(NMDIR)/$${f#./}"; done; fi
	set -e; for f in packaging/libexec/*; do \
	  [ -e "$$f" ] || continue; install -D -m 0755 "$$f" $(DESTDIR)$(LIBEXECDIR)/ec2-net-utils/$${f##*/}; done
	# ec2-net-utils 1.x's commands, for runbooks (packaging/libexec/compat says what each does).
	install -d $(DESTDIR)$(SBINDIR)
	for c in ec2ifup ec2ifdown ec2ifscan; do \
	  ln -sfr $(DESTDIR)$(LIBEXECDIR)/ec2-net-utils/compat $(DESTDIR)$(SBINDIR)/$$c; done
	set -e; if [ "$(WITH_IFCFG)" = 1 ]; then for f in packaging/systemd/ifcfg/*.conf; do \
	  install -D -m 0644 "$$f" $(DESTDIR)$(UNITDIR)/ec2-net-utils.service.d/$${f##*/}; done; \
	  caps=$$(grep -h '^CapabilityBoundingSet=' packaging/systemd/ifcfg/*.conf | tail -1); \
	  sed -i "s/^CapabilityBoundingSet=.*/$$caps/" $(DESTDIR)$(UNITDIR)/ec2-net-utils.service; fi
	$(BIN) completion bash > $(DESTDIR)$(BASHCOMPDIR)/ec2-net-utils

# The package version: the spec's Version, which debian/changelog must repeat (package-test).
PKG_VERSION  = $(shell sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/ec2-net-utils.spec)
DIST         = dist/ec2-net-utils-$(PKG_VERSION)

# The source tarball both packages build from: the files git tracks or would track (the work
# tree, so uncommitted work is tested too; in CI that is the clean checkout).
dist:
	rm -rf $(DIST) $(DIST).tar.gz
	mkdir -p dist
	git ls-files -z --cached --others --exclude-standard \
	  | xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh \
	  | tar --null -T - --transform 's,^,ec2-net-utils-$(PKG_VERSION)/,' -czf $(DIST).tar.gz

# rpmbuild from Debian's rpm package: --nodeps because its RPM database knows nothing of the
# Debian-installed build dependencies (Go, systemd).
rpm: dist
	rm -rf dist/rpmbuild
	mkdir -p dist/rpmbuild/SOURCES
	cp $(DIST).tar.gz dist/rpmbuild/SOURCES/
	rpmbuild -bb --nodeps $(RPMBUILD_FLAGS) --define '_topdir $(CURDIR)/dist/rpmbuild' packaging/rpm/ec2-net-utils.spec
	cp dist/rpmbuild/RPMS/*/ec2-net-utils-*.rpm dist/

# Built in an unpacked copy of the tarball, so the result comes from a clean tree and
# dpkg-buildpackage's output lands in dist/ instead of the repository's parent. -d: Debian 12's
# golang-go is 1.19; the Go this builds with (>= 1.26, see Build-Depends) is /usr/local/go.
deb: dist
	rm -rf dist/deb
	mkdir -p dist/deb
	tar -C dist/deb -xzf $(DIST).tar.gz
	cd dist/deb/ec2-net-utils-$(PKG_VERSION) && dpkg-buildpackage -us -uc -b -d
	cp dist/deb/*.deb dist/

# Builds both packages and checks them: lintian, rpmlint, contents against packaging/tests/,
# an install/remove/purge of the deb into a throwaway root, systemd-analyze verify and security.
package-test: rpm deb
	packaging/tests/run dist
