# ec2-net-utils — build, test, demo.
#
# Safety: every target that runs the agent does so inside a lab network namespace, where
# 169.254.169.254 is the lab's own fake IMDS. Nothing here talks to the machine's real IMDS.

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO        ?= go
GOFLAGS   ?=
BIN       := bin/ec2-net-utils
LDFLAGS   := -s -w -X main.version=$(VERSION)
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build test unit-test lab-test lint fmt demo bench clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ec2-net-utils
	$(GO) build -trimpath -o bin/ec2-net-utils-lab ./cmd/ec2-net-utils-lab

# Unit tests need no root; lab tests (real systemd-networkd in network namespaces) run as root
# and skip with a message otherwise. -p 1 keeps the lab suites from fighting over 2 cores.
test: lint
	$(GO) test -count=1 -p 1 -timeout 15m ./...

unit-test:
	$(GO) test -count=1 -short ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt: not formatted: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# The demo builds a simulated VPC in network namespaces, runs the daemon in it with real
# systemd-networkd, attaches an ENI, adds a secondary IP, shows what a user would see, detaches
# and cleans up. Root only.
demo: build
	./bin/ec2-net-utils-lab demo --agent $(BIN)

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./core/...
	./bin/ec2-net-utils-lab bench --agent $(BIN)

clean:
	rm -rf bin dist
