# Vigil: the two commands a new machine needs are `make demo` and `make test`
# (as root: the lab runs real PostgreSQL servers and network namespaces).
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

STATICCHECK_VERSION := v0.8.2
GO_TEST_FLAGS ?= -race -count=1 -timeout 60m

# The version `vigil version` prints and the package carries is computed from
# git by internal/packaging (0.0.0~git<date>.<commit>, or from a vX.Y.Z tag,
# with -dirty for uncommitted changes); VERSION=1.2.3 overrides it.
VERSION ?=
MKDEB := go run ./packaging/mkdeb
MKDEB_VERSION = $(if $(VERSION),--version $(VERSION))

.PHONY: deps build deb test lint demo bench clean

deps:
	./scripts/install-deps.sh

build: deps
	$(MKDEB) build --out bin/vigil $(MKDEB_VERSION)

# The Debian package bin/vigil_<version>_<arch>.deb: the binary, the systemd
# units, man pages and completions generated from the binary, the examples.
# Needs Go, git and dpkg-deb only.
deb:
	$(MKDEB) deb --out bin $(MKDEB_VERSION)

lint: deps
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above are not formatted"; exit 1; }
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Every test: unit tests and the tests against real PostgreSQL clusters.
test: lint
	go test $(GO_TEST_FLAGS) ./...

# The main job: a real 3-node cluster fails over under load and prints its timeline.
demo: build
	./bin/vigil demo

# The failover benchmark (not a test): see BENCHMARKS.md.
bench: build
	./bin/vigil bench failover --runs 5

clean:
	rm -rf bin
