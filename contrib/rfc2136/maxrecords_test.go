package rfc2136_test

import (
	"fmt"
	"testing"

	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// manyTargets returns v4 IPv4 and v6 IPv6 targets.
func manyTargets(v4, v6 int) []dnsplan.Target {
	var ts []dnsplan.Target
	for i := range v4 {
		ts = append(ts, tg(fmt.Sprintf("10.1.%d.%d", i/200, 1+i%200), 1))
	}
	for i := range v6 {
		ts = append(ts, tg(fmt.Sprintf("2001:db8::%x", i+1), 1))
	}
	dnsplan.SortTargets(ts)
	return ts
}

// TestMoreRecordsOfATypeThanBindServes: BIND (9.18.28 and later) answers
// SERVFAIL to an update that leaves more than 100 records of one type at
// a name (max-records-per-type), a failure that passes by itself for no
// retry. The provider refuses such an endpoint before any I/O, with an
// error that names the numbers, unless Config.MaxRecordsPerType says the
// server allows more; 100 of each family go through.
func TestMoreRecordsOfATypeThanBindServes(t *testing.T) {
	s := bindtest.Start(t)
	p, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret(), MaxTargets: 768})
	require.NoError(t, err)

	ok := dnsplan.Records{Generation: 1, Targets: manyTargets(100, 100)}
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, ok), "100 records of each type")
	cur, plain := read(t, p, api)
	assert.Equal(t, ok, plain)

	for _, tc := range []struct {
		v4, v6 int
		want   string
	}{{101, 0, "101 A records"}, {0, 101, "101 AAAA records"}} {
		err := p.Apply(ctx, api, cur, dnsplan.Records{Generation: 2, Targets: manyTargets(tc.v4, tc.v6)})
		require.ErrorIs(t, err, dnsplan.ErrInvalidRecords)
		assert.NotErrorIs(t, err, rfc2136.ErrTransient)
		assert.ErrorContains(t, err, tc.want)
		assert.ErrorContains(t, err, "Config.MaxRecordsPerType 100")
	}
	_, plain = read(t, p, api)
	assert.Equal(t, ok, plain, "nothing written")

	// A Config that claims more than the server allows gets the
	// server's SERVFAIL, named for what it is.
	raised, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret(), MaxTargets: 768, MaxRecordsPerType: 768})
	require.NoError(t, err)
	err = raised.Apply(ctx, api, cur, dnsplan.Records{Generation: 2, Targets: manyTargets(101, 0)})
	require.ErrorIs(t, err, rfc2136.ErrServer)
	assert.ErrorContains(t, err, "SERVFAIL")
	assert.ErrorContains(t, err, "max-records-per-type")

	for _, bad := range []int{-1, 769} {
		_, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, MaxRecordsPerType: bad})
		require.ErrorIs(t, err, rfc2136.ErrInvalidConfig)
		assert.ErrorContains(t, err, fmt.Sprintf("Config.MaxRecordsPerType %d", bad))
	}
}
