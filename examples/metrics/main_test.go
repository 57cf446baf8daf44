package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sample is one scraped value.
type sample struct {
	labels string
	value  float64
}

// scrape reads the text exposition at url: the type of each metric family
// and its samples.
func scrape(t *testing.T, url string) (map[string]string, map[string][]sample) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	types, samples := map[string]string{}, map[string][]sample{}
	line := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$`)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if f := strings.Fields(l); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unparsed line %q", l)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		samples[m[1]] = append(samples[m[1]], sample{m[2], v})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return types, samples
}

// find returns the value of name's sample whose labels hold every one of
// want, and whether there is one.
func find(samples map[string][]sample, name string, want ...string) (float64, bool) {
	for _, s := range samples[name] {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s.labels, w)
		}
		if ok {
			return s.value, true
		}
	}
	return 0, false
}

// TestServesMetrics runs the command on a free loopback port, scrapes
// /metrics over TCP, and checks the workload's series with their types.
func TestServesMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-seconds", "600"}, pw, &stderr)
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL printed (%v); stderr: %s", err, stderr.String())
	}
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/metrics`).FindString(first)
	if url == "" {
		t.Fatalf("no URL in %q", first)
	}
	go io.Copy(io.Discard, pr)
	types, samples := scrape(t, url)

	checks := []struct {
		name, typ string
		labels    []string
		min       float64
	}{
		// The first round (one call per zone) is done before serving.
		{"stormguard_shed_queue_admitted_total", "counter", []string{`stormguard_name="api"`}, 3},
		{"stormguard_shed_queue_inflight", "gauge", []string{`stormguard_name="api"`}, 0},
		{"stormguard_shed_queue_shed_total", "counter", []string{`stormguard_reason="queue_full"`}, 0},
		{"stormguard_shed_partition_admitted_total", "counter", []string{`stormguard_name="zones"`}, 3},
		{"stormguard_shed_partition_key_admitted_total", "counter", []string{`stormguard_key="az1"`}, 1},
		{"stormguard_shed_partition_key_admitted_total", "counter", []string{`stormguard_key="az3"`}, 1},
		{"stormguard_shed_partition_key_waiting", "gauge", []string{`stormguard_key="az2"`}, 0},
		{"stormguard_backoff_budget_tokens", "gauge", []string{`stormguard_name="retries"`}, 0},
		{"stormguard_backoff_budget_retries_total", "counter", []string{`stormguard_name="retries"`}, 1},
		{"stormguard_backoff_breaker_failures", "gauge", []string{`stormguard_key="host-az3"`}, 1},
		{"stormguard_backoff_breaker_state", "gauge", []string{`stormguard_key="host-az1"`, `stormguard_state="closed"`}, 1},
		{"stormguard_backoff_breaker_refused_total", "counter", []string{`stormguard_key="host-az3"`}, 0},
	}
	for _, c := range checks {
		if got := types[c.name]; got != c.typ {
			t.Errorf("%s: type %q, want %q", c.name, got, c.typ)
		}
		v, ok := find(samples, c.name, c.labels...)
		if !ok {
			t.Errorf("%s%v: no sample", c.name, c.labels)
			continue
		}
		if v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	if _, ok := find(samples, "stormguard_backoff_breaker_state", `stormguard_key="host-az1"`, `stormguard_state="open"`); !ok {
		t.Error("no open series for host-az1: every state should have a series")
	}

	// The exporter's translation: one unit suffix at most, a ratio named
	// as one (not failure_rate_ratio), _total on counters only.
	for name, typ := range types {
		if !strings.HasPrefix(name, "stormguard_") {
			continue
		}
		for _, tok := range []string{"total", "ratio", "seconds"} {
			if strings.Count(name+"_", "_"+tok+"_") > 1 {
				t.Errorf("%s: %s twice", name, tok)
			}
		}
		if strings.Contains(name, "rate_ratio") {
			t.Errorf("%s: a ratio named a rate", name)
		}
		if strings.HasSuffix(name, "_total") != (typ == "counter") {
			t.Errorf("%s: type %s", name, typ)
		}
	}
	if _, ok := find(samples, "stormguard_backoff_breaker_failure_ratio", `stormguard_key="host-az3"`); !ok {
		t.Error("no stormguard_backoff_breaker_failure_ratio for host-az3")
	}

	cancel()
	if rc := <-done; rc != 0 {
		t.Fatalf("run returned %d; stderr: %s", rc, stderr.String())
	}
}

// TestFlags: bad flags are refused with status 2 and a message naming
// the bound; -h states -seconds' range.
func TestFlags(t *testing.T) {
	cases := []struct {
		args []string
		rc   int
		msg  string
	}{
		{[]string{"-seconds", "0"}, 2, "outside [1, 3600]"},
		{[]string{"-seconds", "3601"}, 2, "outside [1, 3600]"},
		{[]string{"-addr", "0.0.0.0:9464"}, 2, "not a loopback IP"},
		{[]string{"-addr", "example.com:80"}, 2, "not a loopback IP"},
		{[]string{"-addr", "nonsense"}, 2, "-addr"},
		{[]string{"extra"}, 2, "unexpected arguments"},
		{[]string{"-h"}, 0, "1 to 3600"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if rc := run(t.Context(), c.args, &out, &errb); rc != c.rc || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: status %d, stderr %q; want %d and %q", c.args, rc, errb.String(), c.rc, c.msg)
		}
	}
}

// TestPortInUse: an address already taken fails with status 1 and a
// message naming it, after nothing was served.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out, errb bytes.Buffer
	rc := run(t.Context(), []string{"-addr", ln.Addr().String(), "-seconds", "1"}, &out, &errb)
	if rc != 1 || !strings.Contains(errb.String(), ln.Addr().String()) || out.Len() != 0 {
		t.Errorf("status %d, stdout %q, stderr %q; want 1, nothing, and the address", rc, out.String(), errb.String())
	}
}

// TestFlagEdgesAccepted: -seconds at both ends of its range is accepted
// (the context is already done, so the run stops at once).
func TestFlagEdgesAccepted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, s := range []string{"1", "3600"} {
		var out, errb bytes.Buffer
		if rc := run(ctx, []string{"-addr", "127.0.0.1:0", "-seconds", s}, &out, &errb); rc != 0 {
			t.Errorf("-seconds %s: status %d, stderr %q", s, rc, errb.String())
		}
	}
}

// TestInterrupt runs the command in a child process and interrupts it
// once it serves: it stops with status 0.
func TestInterrupt(t *testing.T) {
	if os.Getenv("STORMGUARD_METRICS_CHILD") == "1" {
		os.Args = []string{"metrics", "-addr", "127.0.0.1:0", "-seconds", "3600"}
		main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInterrupt$")
	cmd.Env = append(os.Environ(), "STORMGUARD_METRICS_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "serving metrics on http://127.0.0.1:") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("first line %q (%v); stderr %s", line, err, stderr.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after an interrupt: %v; stderr %s", err, stderr.String())
	}
}
