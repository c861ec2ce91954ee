# Vigil: the two commands a new machine needs are `make demo` and `make test`
# (as root: the lab runs real PostgreSQL servers and network namespaces).
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

STATICCHECK_VERSION := v0.8.2
GO_TEST_FLAGS ?= -race -count=1 -timeout 60m

.PHONY: deps build test lint demo clean

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

# The main job. For now: a real 3-node cluster in network namespaces.
demo: build
	./bin/vigil lab down --dir /var/tmp/vigil-demo 2>/dev/null || true
	./bin/vigil lab up --nodes 3 --netns --dir /var/tmp/vigil-demo
	./bin/vigil lab status --dir /var/tmp/vigil-demo

clean:
	rm -rf bin
