# Vigil: the two commands a new machine needs are `make demo` and `make test`
# (as root: the lab runs real PostgreSQL servers and network namespaces).
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

STATICCHECK_VERSION := v0.8.2
GO_TEST_FLAGS ?= -race -count=1 -timeout 60m

.PHONY: deps build test lint demo bench clean

deps:
	./scripts/install-deps.sh

build: deps
	go build -o bin/vigil ./cmd/vigil

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
