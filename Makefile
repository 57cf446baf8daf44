# Every Go module in the repository; `go test ./...` at the root does not
# descend into nested modules, so each target visits them one by one.
MODULES := $(patsubst %/go.mod,%,$(shell find . -name go.mod -not -path '*/testdata/*' | sort))
GO ?= go
SHELL := /bin/bash

.PHONY: test fmt-check vet race demo bench ebs2011-charts dynamodb2025-charts release-check

## test: gofmt check, go vet and go test -race in every module
test: fmt-check vet race

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@set -e; for m in $(MODULES); do echo "== go vet $$m"; (cd $$m && $(GO) vet ./...); done

# Every module is tested even after one fails; go test -json goes through
# internal/cmd/testsummary, which prints what go test alone would (ok and
# FAIL lines, failures, build errors) and ends with one line per module of
# tests run, passed, failed and skipped, with the skip messages, so that the
# log says whether the etcd and BIND integration suites ran. Either a failed
# go test or a failure the summary saw fails the target.
race:
	@set -o pipefail; \
	( rc=0; for m in $(MODULES); do echo "== go test -race $$m"; \
		(cd $$m && $(GO) test -json -race -count=1 $(TESTFLAGS) ./...) || rc=1; \
	done; exit $$rc ) | $(GO) run ./internal/cmd/testsummary -modules "$(MODULES)"

## demo: run the outage reproductions; ebs2011 writes its charts (PNG and
## SVG) into examples/out/ebs2011/
demo:
	cd examples && $(GO) run ./retrystorm && echo && $(GO) run ./azisolation && echo && $(GO) run ./dnsrace && echo && $(GO) run ./leasestorm && echo && $(GO) run ./ebs2011 -out out/ebs2011 && echo && $(GO) run ./dynamodb2025 -out out/dynamodb2025

## ebs2011-charts: regenerate the chart the README shows (docs/ebs2011.png
## and .svg) from the default run
ebs2011-charts:
	cd examples && $(GO) run ./ebs2011 -out out/ebs2011 >/dev/null && mkdir -p ../docs && cp out/ebs2011/ebs2011.png out/ebs2011/ebs2011.svg ../docs/

## dynamodb2025-charts: regenerate the chart the README shows
## (docs/dynamodb2025.png and .svg) from the default run
dynamodb2025-charts:
	cd examples && $(GO) run ./dynamodb2025 -out out/dynamodb2025 >/dev/null && mkdir -p ../docs && cp out/dynamodb2025/dynamodb2025.png out/dynamodb2025/dynamodb2025.svg ../docs/

## bench: side-by-side benchmarks against peer libraries (see bench/RESULTS.md)
bench:
	cd bench && set -o pipefail && $(GO) test -run '^$$' -bench . -benchmem -count 6 | tee new.txt && $(GO) tool benchstat new.txt

## fuzz: run every Fuzz function of every module for FUZZTIME each (default
## 10s; FUZZTIME=100000x runs a number of inputs instead; FUZZFLAGS adds go
## test flags); not part of test.
## A run that fails with only "context deadline exceeded" and no failing
## input is retried once: that is a race in the fuzzing coordinator of the
## Go toolchain at the end of a -fuzztime duration, not a bug found.
FUZZTIME ?= 10s
.PHONY: fuzz
fuzz:
	@set -eo pipefail; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; n=0; \
	for m in $(MODULES); do \
		targets=$$(cd $$m && $(GO) list -f '{{.ImportPath}}{{range .TestGoFiles}} {{$$.Dir}}/{{.}}{{end}}{{range .XTestGoFiles}} {{$$.Dir}}/{{.}}{{end}}' ./... | \
			while read -r pkg files; do \
				[ -z "$$files" ] || sed -n "s|^func \(Fuzz[A-Za-z0-9_]*\)(.*|$$pkg \1|p" $$files; \
			done); \
		while read -r pkg f; do \
			[ -n "$$pkg" ] || continue; \
			for try in 1 2; do \
				echo "== go test -fuzz $$f -fuzztime $(FUZZTIME) $$pkg"; \
				if (cd $$m && $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg) 2>&1 | tee "$$log"; then \
					n=$$((n+1)); continue 2; \
				fi; \
				if [ $$try = 1 ] && grep -qx '[[:space:]]*context deadline exceeded' "$$log" && ! grep -q 'Failing input written' "$$log"; then \
					echo "== $$f: spurious \"context deadline exceeded\" at the end of -fuzztime (Go fuzzing coordinator race), retrying once"; \
					continue; \
				fi; \
				exit 1; \
			done; \
		done <<< "$$targets"; \
	done; \
	echo "== fuzz: $$n fuzz targets passed in $${SECONDS}s"

## release-check: before cutting tags for VERSION (make release-check
## VERSION=v0.2.0): every module requires the others at VERSION, keeps its
## replace for development and is in go.work; each published module builds
## and is tidy (go mod tidy -diff) with GOWORK=off, and is fetched and built
## as a user's go get would, from a local proxy of its tag's zip without
## any replace (about 2.5 minutes); prints the tags to cut. SET=1 first
## rewrites the requirements to VERSION.
release-check:
	@test -n "$(VERSION)" || { echo "usage: make release-check VERSION=vX.Y.Z [SET=1]"; exit 2; }
	$(GO) run ./internal/cmd/releasecheck -version $(VERSION) -build $(if $(SET),-set)
