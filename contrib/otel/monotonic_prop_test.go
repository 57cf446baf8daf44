package stormotel

import (
	"math"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"pgregory.net/rapid"
)

// obj is a counted object a source reads: a Breakers' breaker that may be
// forgotten and made again, or a Partition key that may be reset.
type obj struct{ n int64 }

// TestPropertyCountersMonotonic: whatever the interleaving of counts,
// replacements of the object (new id, from zero), resets (same id, lower
// count), absences (the key forgotten: nothing to report, and a new
// object from zero, under the same id as a Partition's, when it comes
// back) and collections, the reported counter never falls, and between two
// collections with no replacement, reset or absence it grows by exactly
// what the object counted (saturating at MaxInt64); a collection that sees
// the absence makes the next one exact again.
func TestPropertyCountersMonotonic(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m, r := newMeter(rt)
		cur := &obj{}
		present := true
		sameID := rapid.Bool().Draw(rt, "sameID") // a Partition's key: the id is the Partition
		tbl := []series[*obj]{{metric: budgetPrefix + ".retries", source: "n", i: func(o *obj) int64 { return o.n }}}
		partition := &obj{}
		get := func() (*obj, any, bool) {
			if sameID {
				return cur, partition, present
			}
			return cur, cur, present
		}
		_, err := register(m, "prop", "c", []source[*obj]{{table: tbl, get: get}})
		if err != nil {
			rt.Fatal(err)
		}
		at := enc(attribute.NewSet(name("c")))
		var reported float64 // last value collected
		var grew int64       // counted since that collection, if exact
		exact := false       // no replacement, reset or absence since then
		seen := false
		rt.Repeat(map[string]func(*rapid.T){
			"count": func(rt *rapid.T) {
				if !present {
					return // a count makes the key again: see "absent"
				}
				d := rapid.Int64Range(0, 1<<40).Draw(rt, "d")
				if rapid.Bool().Draw(rt, "huge") {
					d = math.MaxInt64 / 2
				}
				cur.n = satAdd(cur.n, d)
				grew = satAdd(grew, d)
			},
			"replace": func(rt *rapid.T) {
				cur = &obj{}
				exact = false
			},
			"reset": func(rt *rapid.T) {
				if cur.n > 0 {
					cur.n = rapid.Int64Range(0, cur.n-1).Draw(rt, "to")
					exact = false
				}
			},
			"absent": func(rt *rapid.T) {
				if present {
					exact = false // the counts since the last collection are lost
				} else {
					cur = &obj{} // made again, from zero
				}
				present = !present
			},
			"collect": func(rt *rapid.T) {
				p, ok := collect(rt, r)[budgetPrefix+".retries"][at]
				if !ok {
					if present {
						rt.Fatal("present but not reported")
					}
					grew, exact = 0, true
					return
				}
				if p.value < reported {
					rt.Fatalf("counter fell from %v to %v", reported, p.value)
				}
				if seen && exact && reported+float64(grew) < 1<<53 && grew < 1<<53 && p.value != reported+float64(grew) {
					rt.Fatalf("counter grew by %v, want %d", p.value-reported, grew)
				}
				reported, grew, exact, seen = p.value, 0, true, true
			},
		})
	})
}

// pair is a source with two counters: admissions, and the refusals a
// revoked admission moves to.
type pair struct{ n, c int64 }

// TestPropertyCountersNeverOvercount: whatever the interleaving of
// admissions, refusals, revoked grants (one admission becomes a refusal,
// in one snapshot), replacements, resets (every count fresh and lower in
// all), absences (the key forgotten, made again from zero) and
// collections, each reported counter never falls and never
// exceeds all that was ever counted into it.
func TestPropertyCountersNeverOvercount(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m, r := newMeter(rt)
		cur, prim := &pair{}, &pair{}
		present := true
		sameID := rapid.Bool().Draw(rt, "sameID")
		tbl := []series[*pair]{
			{metric: budgetPrefix + ".retries", source: "n", i: func(p *pair) int64 { return p.n }},
			{metric: budgetPrefix + ".refused", source: "c", i: func(p *pair) int64 { return p.c }},
		}
		get := func() (*pair, any, bool) {
			if sameID {
				return cur, prim, present
			}
			return cur, cur, present
		}
		if _, err := register(m, "prop", "c", []source[*pair]{{table: tbl, get: get}}); err != nil {
			rt.Fatal(err)
		}
		at := enc(attribute.NewSet(name("c")))
		var totalN, totalC, lastN, lastC float64
		rt.Repeat(map[string]func(*rapid.T){
			"admit": func(rt *rapid.T) {
				d := rapid.Int64Range(0, 1000).Draw(rt, "d")
				cur.n += d
				totalN += float64(d)
			},
			"refuse": func(rt *rapid.T) {
				d := rapid.Int64Range(0, 1000).Draw(rt, "d")
				cur.c += d
				totalC += float64(d)
			},
			"revoke": func(rt *rapid.T) {
				if cur.n > 0 {
					cur.n--
					cur.c++
					totalC++
				}
			},
			"replace": func(rt *rapid.T) {
				cur = &pair{}
			},
			"absent": func(rt *rapid.T) {
				if !present {
					cur = &pair{} // made again, from zero
				}
				present = !present
			},
			"reset": func(rt *rapid.T) {
				if cur.n > 0 {
					n := rapid.Int64Range(0, cur.n-1).Draw(rt, "n")
					c := rapid.Int64Range(0, cur.c).Draw(rt, "c")
					cur = &pair{n, c} // under sameID, only the fall in all tells
					totalN += float64(n)
					totalC += float64(c)
				}
			},
			"collect": func(rt *rapid.T) {
				got := collect(rt, r)
				pn, ok := got[budgetPrefix+".retries"][at]
				if ok != present {
					rt.Fatalf("reported %v, present %v", ok, present)
				}
				if !ok {
					return
				}
				n, c := pn.value, got[budgetPrefix+".refused"][at].value
				if n < lastN || c < lastC {
					rt.Fatalf("fell: n %v -> %v, c %v -> %v", lastN, n, lastC, c)
				}
				if n > totalN || c > totalC {
					rt.Fatalf("overcount: n %v of %v counted, c %v of %v", n, totalN, c, totalC)
				}
				lastN, lastC = n, c
			},
		})
	})
}
