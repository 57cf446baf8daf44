// Package bindtest runs a real BIND 9 name server for tests: Debian's
// named (or the one named by $NAMED_BIN), authoritative for one zone that
// accepts dynamic updates signed with a fresh TSIG key, listening on a
// free loopback port, with its configuration, zone and journal in the
// test's temporary directory. The test owns the process: it is stopped by
// its PID when the test ends, and the kernel kills it if the test binary
// dies first. Nothing else is ever signalled.
//
// Without a named binary, Start skips the test with a message saying how
// to install one — unless the environment variable CI is "true", where a
// missing binary fails the test, so that CI cannot pass by skipping.
package bindtest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/internal/proctest"
)

// DefaultBinary is where Debian's bind9 package installs named.
const DefaultBinary = "/usr/sbin/named"

// defaultBinary is DefaultBinary, a variable so that tests of this package
// can pretend it is missing.
var defaultBinary = DefaultBinary

// readyTimeout bounds the wait for a started named to answer.
const readyTimeout = 30 * time.Second

// Zone is the zone every Server serves. Dynamic updates and zone
// transfers (AXFR) of it need KeyName.
const Zone = "dnsplan.test."

// KeyName is the name of the TSIG key (hmac-sha256) that may update Zone.
const KeyName = "dnsplan-key."

// Server is a named process owned by one test.
type Server struct {
	t      testing.TB
	dir    string
	addr   string
	secret string
	proc   *proctest.Process
}

// Binary returns the named binary to use: $NAMED_BIN, else named on
// $PATH, else DefaultBinary; "" if none exists.
func Binary() string { return proctest.Binary("NAMED_BIN", "named", defaultBinary) }

// Start starts named on a free loopback port (UDP and TCP), serving Zone
// with updates allowed for KeyName, and waits until it answers. The
// server is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := proctest.Require(t, "NAMED_BIN", "named", defaultBinary, "apt-get install -y bind9")
	dir := t.TempDir()
	// named runs as root here without -u, but keep the directory open to
	// any user in case it drops privileges.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatalf("bindtest: %v", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatalf("bindtest: %v", err)
	}
	port := proctest.FreePorts(t, 1, true)[0]
	s := &Server{
		t:      t,
		dir:    dir,
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		secret: base64.StdEncoding.EncodeToString(key),
		proc:   proctest.NewProcess("named", filepath.Join(dir, "named.log")),
	}
	s.writeConfig(port)
	t.Cleanup(s.Stop)
	s.start(bin)
	return s
}

func (s *Server) writeConfig(port int) {
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
	allow-transfer { key %q; };
};
`, KeyName, s.secret, s.dir, filepath.Join(s.dir, "named.pid"), filepath.Join(s.dir, "session.key"),
		port, strings.TrimSuffix(Zone, "."), KeyName, KeyName)
	zone := fmt.Sprintf(`$ORIGIN %s
$TTL 60
@	IN SOA ns.%s admin.%s 1 60 60 3600 60
@	IN NS ns.%s
ns	IN A 127.0.0.1
`, Zone, Zone, Zone, Zone)
	for name, body := range map[string]string{"named.conf": conf, "zone.db": zone} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o666); err != nil {
			s.t.Fatalf("bindtest: %v", err)
		}
	}
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Secret returns the base64 secret of KeyName.
func (s *Server) Secret() string { return s.secret }

// PID returns the process id of the running named, or 0.
func (s *Server) PID() int { return s.proc.PID() }

func (s *Server) start(bin string) {
	s.t.Helper()
	// -g: foreground, log to stderr; -4: IPv4 only. named runs as many
	// worker threads as the machine has CPUs, as a deployment's does:
	// one thread (-n 1) would serve every query behind every update.
	cmd := exec.Command(bin, "-g", "-4", "-c", filepath.Join(s.dir, "named.conf"))
	cmd.Dir = s.dir
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	if err := s.proc.StartReady(cmd, readyTimeout, func() error { return s.answers(c) }); err != nil {
		s.t.Fatalf("bindtest: named at %s did not answer: %v", s.addr, err)
	}
}

// answers asks for the zone's SOA once; named is ready when it answers
// authoritatively.
func (s *Server) answers(c *dns.Client) error {
	m := new(dns.Msg)
	m.SetQuestion(Zone, dns.TypeSOA)
	r, _, err := c.Exchange(m, s.addr)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return fmt.Errorf("SOA answered %s (authoritative %v)", dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	return nil
}

// Stop stops named (SIGTERM, then SIGKILL after ten seconds) by the PID
// Start recorded, and waits for it to exit. Start registers it as a
// cleanup; it does nothing if named is not running.
func (s *Server) Stop() { s.proc.Stop(s.t) }

// Crash kills named with SIGKILL, as a crash would, and starts it again
// on the same port with the same key and zone (its journal kept), and
// waits until it answers. Connections to the old process are dead.
func (s *Server) Crash() {
	s.t.Helper()
	s.proc.Kill(s.t)
	s.start(Binary())
}
