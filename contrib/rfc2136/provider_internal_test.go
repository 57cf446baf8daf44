package rfc2136

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLargestUpdateFitsOneMessage: the UPDATE of the most targets New
// accepts, with the longest endpoint name its metadata names allow, the
// longest MetaPrefix and key name, SHA-512 TSIG, the longest IPv6
// addresses and weights, and the largest generations, fits one DNS
// message; one target more is refused by New.
func TestLargestUpdateFitsOneMessage(t *testing.T) {
	label := func(c string, n int) string { return strings.Repeat(c, n) }
	prefix := label("m", 50)
	key := label("k", 63) + "." + label("k", 63) + "." + label("k", 63) + "." + label("k", 61) + "."
	long := label("z", 63) + "." + label("z", 63) + "." + label("z", 50) + "."
	for _, tc := range []struct {
		name, zone string
		owner      func(zone string) string
	}{
		// The weights name, prefix+"-weights."+owner, may be 254 bytes.
		{"long labels", long, func(zone string) string {
			return label("e", 254-len(prefix+"-weights.")-len(zone)-1) + "." + zone
		}},
		// The most labels, each an ancestor the update's prerequisites
		// name.
		{"most labels", "z.", func(zone string) string {
			n := 254 - len(prefix+"-weights.") - len(zone)
			return label("e", 1+n%2) + "." + label("e.", (n-2-n%2)/2) + zone
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Server: "127.0.0.1:53", Zone: tc.zone, KeyName: key, Secret: base64.StdEncoding.EncodeToString(make([]byte, 64)),
				Algorithm: dns.HmacSHA512, MetaPrefix: prefix, MaxTargets: maxTargetsLimit}
			p, err := New(cfg)
			require.NoError(t, err)
			endpoint := strings.TrimSuffix(tc.owner(tc.zone), ".")
			n, err := p.names(endpoint)
			require.NoError(t, err)
			require.Len(t, n.weights, 254, "the longest weights name")
			_, err = p.names("e" + endpoint)
			require.ErrorIs(t, err, ErrInvalidName, "a longer endpoint is refused")

			r := dnsplan.Records{Generation: math.MaxUint64}
			for i := range maxTargetsLimit {
				a := netip.MustParseAddr(fmt.Sprintf("ffff:ffff:ffff:ffff:ffff:ffff:ffff:%x", 0xf000+i))
				require.Len(t, a.String(), len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
				r.Targets = append(r.Targets, dnsplan.Target{Addr: a, Weight: math.MaxUint32 - uint32(i)})
			}
			require.NoError(t, dnsplan.ValidateRecords(endpoint, r, p.cfg.MaxTargets))
			m := p.update(n, head{gen: math.MaxUint64 - 1, version: newVersion()}, head{gen: r.Generation, version: newVersion()}, r)
			m.SetTsig(p.cfg.KeyName, p.cfg.Algorithm, 300, time.Now().Unix())
			wire, _, err := dns.TsigGenerate(m, p.cfg.Secret, "", false)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(wire), dns.MaxMsgSize)
			t.Logf("UPDATE of %d targets: %d bytes, limit %d", maxTargetsLimit, len(wire), dns.MaxMsgSize)
			var back dns.Msg
			require.NoError(t, back.Unpack(wire))
			assert.Len(t, back.Ns, 4+maxTargetsLimit+2, "four deletions, the addresses, two TXT")
			labels := dns.CountLabel(n.owner) - dns.CountLabel(p.cfg.Zone)
			assert.Len(t, back.Answer, 1+3+2*labels+1, "the generation, three CNAMEs, DNAME and NS at the owner and its ancestors, DNAME at the apex")

			cfg.MaxTargets = maxTargetsLimit + 1
			_, err = New(cfg)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), fmt.Sprintf("Config.MaxTargets %d is outside [0, %d]", maxTargetsLimit+1, maxTargetsLimit))
		})
	}
}
