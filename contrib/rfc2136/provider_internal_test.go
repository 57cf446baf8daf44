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
	zone := label("z", 63) + "." + label("z", 63) + "." + label("z", 50) + "."
	prefix := label("m", 50)
	// The weights name, prefix+"-weights."+owner, may be 254 bytes.
	owner := label("e", 254-len(prefix+"-weights.")-len(zone)-1) + "." + zone
	key := label("k", 63) + "." + label("k", 63) + "." + label("k", 63) + "." + label("k", 61) + "."
	cfg := Config{Server: "127.0.0.1:53", Zone: zone, KeyName: key, Secret: base64.StdEncoding.EncodeToString(make([]byte, 64)),
		Algorithm: dns.HmacSHA512, MetaPrefix: prefix, MaxTargets: maxTargetsLimit}
	p, err := New(cfg)
	require.NoError(t, err)
	endpoint := strings.TrimSuffix(owner, ".")
	o, gen, weights, err := p.names(endpoint)
	require.NoError(t, err)
	require.Len(t, weights, 254, "the longest weights name")
	_, _, _, err = p.names("e" + endpoint)
	require.Error(t, err, "a longer endpoint is refused")

	r := dnsplan.Records{Generation: math.MaxUint64}
	for i := range maxTargetsLimit {
		a := netip.MustParseAddr(fmt.Sprintf("ffff:ffff:ffff:ffff:ffff:ffff:ffff:%x", 0xf000+i))
		require.Len(t, a.String(), len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
		r.Targets = append(r.Targets, dnsplan.Target{Addr: a, Weight: math.MaxUint32 - uint32(i)})
	}
	require.NoError(t, dnsplan.ValidateRecords(endpoint, r, p.cfg.MaxTargets))
	m := p.update(o, gen, weights, math.MaxUint64-1, r)
	m.SetTsig(p.cfg.KeyName, p.cfg.Algorithm, 300, time.Now().Unix())
	wire, _, err := dns.TsigGenerate(m, p.cfg.Secret, "", false)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(wire), dns.MaxMsgSize)
	t.Logf("UPDATE of %d targets: %d bytes, limit %d", maxTargetsLimit, len(wire), dns.MaxMsgSize)
	var back dns.Msg
	require.NoError(t, back.Unpack(wire))
	assert.Len(t, back.Ns, 4+maxTargetsLimit+2, "four deletions, the addresses, two TXT")

	cfg.MaxTargets = maxTargetsLimit + 1
	_, err = New(cfg)
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), fmt.Sprintf("Config.MaxTargets %d is outside [0, %d]", maxTargetsLimit+1, maxTargetsLimit))
}
