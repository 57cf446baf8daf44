# Every Go module in the repository; `go test ./...` at the root does not
# descend into nested modules, so each target visits them one by one.
MODULES := $(patsubst %/go.mod,%,$(shell find . -name go.mod -not -path '*/testdata/*' | sort))
GO ?= go
SHELL := /bin/bash

.PHONY: test fmt-check vet race demo bench

## test: gofmt check, go vet and go test -race in every module
test: fmt-check vet race

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@set -e; for m in $(MODULES); do echo "== go vet $$m"; (cd $$m && $(GO) vet ./...); done

race:
	@set -e; for m in $(MODULES); do echo "== go test -race $$m"; (cd $$m && $(GO) test -race -count=1 $(TESTFLAGS) ./...); done

## demo: run the outage reproductions
demo:
	cd examples && $(GO) run ./retrystorm && echo && $(GO) run ./azisolation && echo && $(GO) run ./dnsrace && echo && $(GO) run ./leasestorm && echo && $(GO) run ./ebs2011

## bench: side-by-side benchmarks against peer libraries (see bench/RESULTS.md)
bench:
	cd bench && set -o pipefail && $(GO) test -run '^$$' -bench . -benchmem -count 6 | tee new.txt && $(GO) tool benchstat new.txt
