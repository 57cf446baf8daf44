package dnsplan_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tg(i int, w uint32) dnsplan.Target { return dnsplan.Target{Addr: addr(i), Weight: w} }

func TestValidate(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name   string
		plan   dnsplan.Plan
		limits dnsplan.Limits
		want   []string // substrings; nil means valid
	}{
		{"valid", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"api": {tg(1, 1), {Addr: v6, Weight: 3}}}}, dnsplan.Limits{}, nil},
		{"zero generation and no endpoints", dnsplan.Plan{}, dnsplan.Limits{}, []string{"generation 0", "no endpoints"}},
		{"empty endpoint", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"api": nil}}, dnsplan.Limits{}, []string{`"api" has no targets`}},
		{"empty endpoint allowed", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"api": nil}}, dnsplan.Limits{AllowEmpty: true}, nil},
		{"zero weight and duplicate", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"api": {tg(1, 0), tg(1, 2)}}}, dnsplan.Limits{},
			[]string{"weight 0", "twice"}},
		{"bad addresses", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"api": {
			{Weight: 1}, {Addr: netip.MustParseAddr("fe80::1%eth0"), Weight: 1}, {Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Weight: 1}}}}, dnsplan.Limits{},
			[]string{"no address", "has a zone", "IPv4-mapped"}},
		{"bad names", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"": {tg(1, 1)}, "a b": {tg(1, 1)}, strings.Repeat("x", 254): {tg(1, 1)}}}, dnsplan.Limits{},
			[]string{"empty endpoint name", "byte 0x20", "254 bytes"}},
		{"too big", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"a": {tg(1, 1), tg(2, 1)}, "b": {tg(1, 1)}}}, dnsplan.Limits{MaxEndpoints: 1, MaxTargets: 1},
			[]string{"2 endpoints, limit 1", "2 targets, limit 1"}},
		{"bad limits", dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"a": {tg(1, 1)}}}, dnsplan.Limits{MaxEndpoints: -1, MaxTargets: -1},
			[]string{"MaxEndpoints -1", "MaxTargets -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dnsplan.Validate(tc.plan, tc.limits)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, dnsplan.ErrInvalidPlan) || errors.Is(err, dnsplan.ErrInvalidConfig))
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestValidateListsAtMostSixteenProblems(t *testing.T) {
	p := dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{}}
	for i := range 100 {
		p.Endpoints[fmt.Sprintf("e%03d", i)] = []dnsplan.Target{tg(1, 0)}
	}
	err := dnsplan.Validate(p, dnsplan.Limits{})
	require.ErrorIs(t, err, dnsplan.ErrInvalidPlan)
	assert.Contains(t, err.Error(), "more problems")
	assert.LessOrEqual(t, strings.Count(err.Error(), "\n"), 18)
}

func TestValidateRecords(t *testing.T) {
	err := dnsplan.ValidateRecords("api", dnsplan.Records{}, 0)
	assert.ErrorIs(t, err, dnsplan.ErrEmptyRecords)
	assert.ErrorIs(t, err, dnsplan.ErrInvalidRecords)
	assert.Contains(t, err.Error(), "generation 0")
	assert.NoError(t, dnsplan.ValidateRecords("api", dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(1, 1)}}, 0))
	assert.ErrorIs(t, dnsplan.ValidateRecords("", dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(1, 1)}}, 0), dnsplan.ErrInvalidRecords)
}

func TestDiffAndSameTargets(t *testing.T) {
	a := dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"same": {tg(1, 1), tg(2, 1)}, "changed": {tg(1, 1)}, "gone": {tg(1, 1)}}}
	b := dnsplan.Plan{Generation: 2, Endpoints: map[string][]dnsplan.Target{"same": {tg(2, 1), tg(1, 1)}, "changed": {tg(1, 2)}, "new": {tg(1, 1)}}}
	assert.Equal(t, []string{"changed", "gone", "new"}, dnsplan.Diff(a, b))
	assert.Empty(t, dnsplan.Diff(a, a))
	assert.True(t, dnsplan.SameTargets([]dnsplan.Target{tg(2, 1), tg(1, 1)}, []dnsplan.Target{tg(1, 1), tg(2, 1)}))
	same := b.Clone()
	same.Normalize()
	assert.Equal(t, "10.0.0.1*1 10.0.0.2*1", dnsplan.FormatTargets(same.Endpoints["same"]))
}

// FuzzValidate: Validate never panics; a plan it accepts keeps every
// promise of a valid plan; normalizing or cloning a valid plan keeps it
// valid; and a store accepts exactly the plans Validate accepts.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{1, 0, 10, 0, 0, 1, 5}, false)
	f.Add([]byte{0}, true)
	f.Add([]byte{3, 1, 10, 0, 0, 1, 0, 10, 0, 0, 1, 1}, false)
	f.Fuzz(func(t *testing.T, data []byte, allowEmpty bool) {
		p := planFromBytes(data)
		limits := dnsplan.Limits{AllowEmpty: allowEmpty, MaxTargets: 8, MaxEndpoints: 8}
		err := dnsplan.Validate(p, limits)
		if err != nil {
			if !errors.Is(err, dnsplan.ErrInvalidPlan) {
				t.Fatalf("error does not match ErrInvalidPlan: %v", err)
			}
		} else {
			if p.Generation == 0 || len(p.Endpoints) == 0 || len(p.Endpoints) > 8 {
				t.Fatalf("accepted %v", p)
			}
			for name, ts := range p.Endpoints {
				if len(ts) == 0 && !allowEmpty || len(ts) > 8 || dnsplan.ValidateEndpoint(name) != nil {
					t.Fatalf("accepted endpoint %q with %d targets", name, len(ts))
				}
				seen := map[netip.Addr]bool{}
				for _, tt := range ts {
					if tt.Weight == 0 || !tt.Addr.IsValid() || seen[tt.Addr] {
						t.Fatalf("accepted target %+v of %q", tt, name)
					}
					seen[tt.Addr] = true
				}
			}
			c := p.Clone()
			c.Normalize()
			if err := dnsplan.Validate(c, limits); err != nil {
				t.Fatalf("normalized copy invalid: %v", err)
			}
		}
		s, _ := dnsplan.NewMemoryStore(dnsplan.MemoryStoreConfig{Limits: limits})
		if perr := s.Put(context.Background(), p); (perr == nil) != (err == nil) {
			t.Fatalf("Validate says %v, Put says %v", err, perr)
		}
	})
}

// planFromBytes decodes a plan: generation byte, then per endpoint a name
// byte and a count, then per target 4 address bytes and a weight byte.
func planFromBytes(b []byte) dnsplan.Plan {
	next := func(n int) []byte {
		if len(b) < n {
			b = nil
			return nil
		}
		v := b[:n]
		b = b[n:]
		return v
	}
	var p dnsplan.Plan
	if g := next(1); g != nil {
		p.Generation = fence.Token(g[0])
	}
	p.Endpoints = map[string][]dnsplan.Target{}
	for len(b) > 0 {
		h := next(2)
		if h == nil {
			break
		}
		name := string([]byte{'a' + h[0]%30, ' ' + h[0]/200})
		if h[0] < 200 {
			name = name[:1]
		}
		var ts []dnsplan.Target
		for range int(h[1] % 10) {
			t := next(5)
			if t == nil {
				break
			}
			a := netip.AddrFrom4([4]byte(t[:4]))
			if t[0] == 0 {
				a = netip.Addr{}
			} else if t[0] == 255 {
				a = netip.AddrFrom16(a.As16())
			}
			ts = append(ts, dnsplan.Target{Addr: a, Weight: uint32(binary.BigEndian.Uint16([]byte{0, t[4]}))})
		}
		p.Endpoints[name] = append(p.Endpoints[name], ts...)
	}
	return p
}

// TestCanonicalEndpointNames: DNS names are case-insensitive and have
// other spellings (a trailing dot, escapes), so a plan naming "api.x" and
// "API.x" would be two endpoints on one DNS name, rewritten in turn on
// every pass. Only the canonical spelling is valid, and the error names
// it.
func TestCanonicalEndpointNames(t *testing.T) {
	dup := dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{
		"api.dnsplan.test": {tg(1, 1)}, "API.dnsplan.test": {tg(2, 1)}}}
	err := dnsplan.Validate(dup, dnsplan.Limits{})
	require.ErrorIs(t, err, dnsplan.ErrInvalidPlan)
	assert.Contains(t, err.Error(), `endpoint name "API.dnsplan.test" is not canonical: use "api.dnsplan.test"`)

	for _, tc := range []struct{ name, want string }{
		{"api.x", ""},
		{"a", ""},
		{"_dnsplan.api-1.x", ""},
		{strings.Repeat("a", 63) + ".x", ""},
		{strings.Repeat("abcdefg.", 31) + "abcd", ""}, // 252 bytes
		{"API.x.", `is not canonical: use "api.x"`},
		{"web.x.", `is not canonical: use "web.x"`},
		{`\065bc.x`, "backslash"},
		{"", "empty endpoint name"},
		{".", "starts with a dot"},
		{".api", "starts with a dot"},
		{"api..x", "empty label at byte 4"},
		{"api.x..", "empty label at byte 6"},
		{"api.", `use "api"`},
		{strings.Repeat("a", 64) + ".x", "label of 64 bytes at byte 0, limit 63"},
		{strings.Repeat("abc.", 63) + "ab", "254 bytes exceeds 253"},
		{"a b", "byte 0x20"},
		{"caf\u00e9.x", "byte 0xc3"},
		{"a*.x", "byte 0x2a"},
	} {
		err := dnsplan.ValidateEndpoint(tc.name)
		if tc.want == "" {
			assert.NoError(t, err, tc.name)
			c, err := dnsplan.CanonicalEndpoint(tc.name)
			assert.NoError(t, err)
			assert.Equal(t, tc.name, c, "a canonical name is its own canonical form")
			continue
		}
		require.ErrorIs(t, err, dnsplan.ErrInvalidPlan, tc.name)
		assert.Contains(t, err.Error(), tc.want, tc.name)
		rerr := dnsplan.ValidateRecords(tc.name, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(1, 1)}}, 0)
		assert.ErrorIs(t, rerr, dnsplan.ErrInvalidRecords, tc.name)
		assert.ErrorIs(t, rerr, dnsplan.ErrInvalidPlan, tc.name)
	}

	for in, want := range map[string]string{"API.dnsplan.test": "api.dnsplan.test", "web.x.": "web.x", "Web.X.": "web.x", "api": "api"} {
		c, err := dnsplan.CanonicalEndpoint(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, c, in)
		assert.NoError(t, dnsplan.ValidateEndpoint(c))
	}
	for _, in := range []string{`\065bc.x`, "web.x..", "", "a b.", "ü.x"} {
		_, err := dnsplan.CanonicalEndpoint(in)
		assert.ErrorIs(t, err, dnsplan.ErrInvalidPlan, in)
	}

	// A report spelling one endpoint two ways is refused, not planned.
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	require.NoError(t, err)
	_, err = p.Next(t0, dnsplan.Report{"api.x": healthy(1, 1), "API.x": healthy(1, 1)})
	require.ErrorIs(t, err, dnsplan.ErrInvalidReport)
	assert.Contains(t, err.Error(), `use "api.x"`)
}
