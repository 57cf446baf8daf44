// Package leakcheck fails a test binary that leaves goroutines behind. Each
// package of stormguard calls it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then waits up to five seconds for the number of
// goroutines to fall back to what it was before the tests; if it does not,
// it prints the goroutines that remain and exits with status 1.
func Main(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if leaked := wait(before, 5*time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines left behind after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func wait(limit int, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		if runtime.NumGoroutine() <= limit {
			return ""
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "leakcheck.wait") || strings.Contains(g, "testing.(*M).Run") {
			continue
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}
