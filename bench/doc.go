// Package bench compares stormguard's primitives with peer libraries in one
// `go test -bench` run, so that the numbers in RESULTS.md come from the same
// machine, the same Go and the same moment. Peers are ordinary module
// dependencies of this module, never of the core module, so importing
// stormguard pulls in none of them.
//
// Run it from this directory (or with `make bench` from the root):
//
//	$ go test -run '^$' -bench . -benchmem -count 6 | tee new.txt
//	$ go tool benchstat new.txt
//
// benchstat is a tool dependency of this module (see go.mod), pinned to a
// golang.org/x/perf version that still builds with Go 1.25.
package bench
