package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// errMissingServer is returned when etcd or named cannot be found.
var errMissingServer = errors.New("server binary not found")

// Where Debian installs the servers; variables so that a test can
// pretend they are missing.
var (
	etcdFallback  = "/usr/bin/etcd"
	namedFallback = "/usr/sbin/named"
)

// binary returns the server binary to use: $env, else name on $PATH,
// else fallback; or an error naming the Debian package to install.
func binary(env, name, fallback, pkg string) (string, error) {
	if b := os.Getenv(env); b != "" {
		return b, nil
	}
	if b, err := exec.LookPath(name); err == nil {
		return b, nil
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", fmt.Errorf("%w: %s is not on PATH nor at %s: install the Debian package %s (apt-get install -y %s), or set %s to its path",
		errMissingServer, name, fallback, pkg, pkg, env)
}

// Zone is the zone the local BIND serves, and the endpoints of the plans.
const (
	zone      = "us-east-1.amazonaws.com."
	dualstack = "dualstack.dynamodb.us-east-1.amazonaws.com"
	fips      = "dynamodb-fips.us-east-1.amazonaws.com"
	regional  = "dynamodb.us-east-1.amazonaws.com"
	keyName   = "dnsfleet-key."
	// genName is where contrib/rfc2136 keeps the regional endpoint's
	// applied generation.
	genName = "_dnsplan." + regional + "."
)

// endpoints in the order every enactor walks them (sorted, as
// dnsplan.Plan.EndpointNames): the regional one last.
var endpoints = []string{dualstack, fips, regional}

// ephemeralRange returns the ports the kernel hands out to outgoing
// connections and to listeners on port 0.
func ephemeralRange() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	return lo, hi, err1 == nil && err2 == nil && lo <= hi
}

// freePorts returns n distinct loopback ports free for TCP and UDP,
// drawn at random below the ephemeral range: etcd is stopped and started
// again on its ports, and a port of that range could meanwhile become
// the local port of one of the connections the fleet opens. (Where the
// range cannot be read, or leaves too little below it, the kernel
// chooses.)
func freePorts(n int) ([]int, error) {
	const lowest = 10000
	lo, _, ok := ephemeralRange()
	pick := func() string { return "0" }
	if ok && lo-lowest >= 1000 {
		pick = func() string { return strconv.Itoa(lowest + mrand.IntN(lo-lowest)) }
	}
	var ports []int
	var open []io.Closer
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 50*n {
			return nil, fmt.Errorf("no %d free loopback ports in %d tries", n, tries)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", pick()))
		if err != nil {
			continue
		}
		open = append(open, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		open = append(open, u)
		ports = append(ports, port)
	}
	return ports, nil
}

// etcdServer is the run's etcd: stopped and started again on the same
// data directory and ports.
type etcdServer struct {
	bin, dir, clientURL, peerURL string
	p                            *proc
}

func (e *etcdServer) logPath() string { return filepath.Join(e.dir, "etcd.log") }

// start starts etcd and waits until it reports healthy.
func (e *etcdServer) start(ctx context.Context, ps *procs) error {
	log, err := os.OpenFile(e.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(e.bin,
		"--name", "dnsfleet",
		"--data-dir", filepath.Join(e.dir, "etcd-data"),
		"--listen-client-urls", e.clientURL,
		"--advertise-client-urls", e.clientURL,
		"--listen-peer-urls", e.peerURL,
		"--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "dnsfleet="+e.peerURL,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "dnsfleet",
		// A restarted single member elects itself in a fraction of a
		// second instead of after the default one-second timeout.
		"--heartbeat-interval", "25",
		"--election-timeout", "250",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = log, log
	p, err := ps.start("etcd", cmd)
	if err != nil {
		return err
	}
	e.p = p
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	return waitReady(ctx, p, e.logPath(), func() error {
		resp, err := client.Get(e.clientURL + "/health")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`) {
			return nil
		}
		return fmt.Errorf("health: %s %s", resp.Status, strings.TrimSpace(string(body)))
	})
}

// readyTimeout bounds the wait for a started server to answer.
const readyTimeout = 30 * time.Second

// waitReady calls ready every 20ms until it succeeds, p exits, ctx ends
// or readyTimeout passes.
func waitReady(ctx context.Context, p *proc, logPath string, ready func() error) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if last = ready(); last == nil {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("%s (pid %d) exited before it was ready (%v); its log ends:\n%s", p.name, p.pid, last, logTail(logPath, 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not ready after %v: %v; its log ends:\n%s", p.name, p.pid, readyTimeout, last, logTail(logPath, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// bindServer is the run's BIND, authoritative for zone with dynamic
// updates signed by a fresh TSIG key.
type bindServer struct {
	bin, dir, addr, secret string
	p                      *proc
}

func newBind(bin, dir string, port int) (*bindServer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	b := &bindServer{bin: bin, dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), secret: base64.StdEncoding.EncodeToString(key)}
	conf := fmt.Sprintf(`key %q {
	algorithm hmac-sha256;
	secret %q;
};
options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	listen-on port %d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	allow-transfer { none; };
};
controls { };
zone %q {
	type primary;
	file "zone.db";
	allow-update { key %q; };
};
`, keyName, b.secret, dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"),
		port, strings.TrimSuffix(zone, "."), keyName)
	db := fmt.Sprintf(`$ORIGIN %s
$TTL 5
@	IN SOA ns.%s admin.%s 1 60 60 3600 5
@	IN NS ns.%s
ns	IN A 127.0.0.1
`, zone, zone, zone, zone)
	for name, body := range map[string]string{"named.conf": conf, "zone.db": db} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *bindServer) logPath() string { return filepath.Join(b.dir, "named.log") }

// start starts named in the foreground (-g) with one worker thread and
// waits until it answers for the zone.
func (b *bindServer) start(ctx context.Context, ps *procs) error {
	log, err := os.OpenFile(b.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(b.bin, "-g", "-4", "-n", "1", "-c", filepath.Join(b.dir, "named.conf"))
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = log, log
	p, err := ps.start("named", cmd)
	if err != nil {
		return err
	}
	b.p = p
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	return waitReady(ctx, p, b.logPath(), func() error {
		m := new(dns.Msg)
		m.SetQuestion(zone, dns.TypeSOA)
		r, _, err := c.Exchange(m, b.addr)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
			return fmt.Errorf("SOA answered %s (authoritative %v)", dns.RcodeToString[r.Rcode], r.Authoritative)
		}
		return nil
	})
}
