package backoff

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		p     Policy
		wants []string // substrings, one per expected complaint
	}{
		{"zero value", Policy{}, nil},
		{"typical", Policy{Base: time.Millisecond, Cap: time.Second, Multiplier: 1.5, Jitter: JitterEqual, MaxAttempts: 3, MaxElapsed: time.Minute}, nil},
		{"multiplier one", Policy{Multiplier: 1}, nil},
		{"unlimited with elapsed", Policy{MaxAttempts: Unlimited, MaxElapsed: time.Second}, nil},
		{"cap defaults to base when base is larger", Policy{Base: time.Minute}, nil},
		{"negative base", Policy{Base: -1}, []string{"Base -1ns is negative"}},
		{"negative cap", Policy{Cap: -time.Second}, []string{"Cap -1s is negative"}},
		{"cap below base", Policy{Base: time.Second, Cap: time.Millisecond}, []string{"Cap 1ms is below Base 1s"}},
		{"cap below default base", Policy{Cap: time.Millisecond}, []string{"below the default Base"}},
		{"multiplier below one", Policy{Multiplier: 0.5}, []string{"Multiplier 0.5 is below 1"}},
		{"NaN multiplier", Policy{Multiplier: math.NaN()}, []string{"Multiplier NaN is not a finite number"}},
		{"Inf multiplier", Policy{Multiplier: math.Inf(1)}, []string{"Multiplier +Inf is not a finite number"}},
		{"negative multiplier", Policy{Multiplier: -2}, []string{"Multiplier -2 is below 1"}},
		{"unknown jitter", Policy{Jitter: 9}, []string{"unknown Jitter 9"}},
		{"negative attempts", Policy{MaxAttempts: -3}, []string{"MaxAttempts -3 is negative"}},
		{"negative elapsed", Policy{MaxElapsed: -time.Second}, []string{"MaxElapsed -1s is negative"}},
		{"unbounded loop", Policy{MaxAttempts: Unlimited}, []string{"would have no bound"}},
		{
			"every bad field at once",
			Policy{Base: -1, Cap: -1, Multiplier: math.NaN(), Jitter: -1, MaxAttempts: -2, MaxElapsed: -1},
			[]string{"Base", "Cap", "Multiplier", "Jitter", "MaxAttempts", "MaxElapsed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if len(tt.wants) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidPolicy)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tt.wants), "one line per bad field: %v", err)
		})
	}
}

func TestEnvelope(t *testing.T) {
	p := Policy{Base: 10 * time.Millisecond, Cap: time.Second}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		assert.Equal(t, w*time.Millisecond, p.Envelope(i+1), "retry %d", i+1)
	}
	assert.Equal(t, 10*time.Millisecond, p.Envelope(0), "n below 1 counts as 1")
	assert.Equal(t, 10*time.Millisecond, p.Envelope(-5))

	p15 := Policy{Base: 100 * time.Millisecond, Multiplier: 1.5, Cap: time.Hour}
	assert.Equal(t, 225*time.Millisecond, p15.Envelope(3))
}

func TestEnvelopeNeverOverflows(t *testing.T) {
	limits := []time.Duration{time.Second, math.MaxInt64}
	for _, c := range limits {
		for _, m := range []float64{1, 1.0001, 1.5, 2, 3, 1e9} {
			p := Policy{Base: time.Nanosecond, Cap: c, Multiplier: m}
			prev := time.Duration(0)
			for _, n := range []int{1, 2, 30, 62, 63, 64, 65, 1000, 1_000_000, math.MaxInt} {
				e := p.Envelope(n)
				require.GreaterOrEqual(t, e, prev, "envelope decreased at n=%d m=%v cap=%v", n, m, c)
				require.LessOrEqual(t, e, c)
				require.Positive(t, e)
				prev = e
			}
		}
	}
	p := Policy{Base: time.Millisecond, Cap: time.Minute}
	assert.Equal(t, time.Minute, p.Envelope(1_000_000))
	assert.InDelta(t, float64(time.Minute), float64(p.Delay(1_000_000, 0, 0.999999)), float64(time.Millisecond))
}

// policyGen draws valid policies, with the zero value's defaults now and then.
func policyGen() *rapid.Generator[Policy] {
	return rapid.Custom(func(t *rapid.T) Policy {
		base := time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "base"))
		minCap := base
		if base == 0 {
			minCap = DefaultBase
		}
		var c time.Duration
		if rapid.Bool().Draw(t, "explicitCap") {
			c = time.Duration(rapid.Int64Range(int64(minCap), math.MaxInt64).Draw(t, "cap"))
		}
		var m float64
		if rapid.Bool().Draw(t, "explicitMultiplier") {
			m = rapid.Float64Range(1, 1e6).Draw(t, "multiplier")
		}
		return Policy{
			Base:        base,
			Cap:         c,
			Multiplier:  m,
			Jitter:      Jitter(rapid.IntRange(int(JitterFull), int(JitterNone)).Draw(t, "jitter")),
			MaxAttempts: rapid.IntRange(0, 50).Draw(t, "maxAttempts"),
			MaxElapsed:  time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "maxElapsed")),
		}
	})
}

func TestDelayStaysInEnvelope(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := policyGen().Draw(t, "policy")
		if err := p.Validate(); err != nil {
			t.Fatalf("generator made an invalid policy: %v", err)
		}
		n := rapid.IntRange(-3, 1_000_000).Draw(t, "n")
		prev := time.Duration(rapid.Int64Range(0, math.MaxInt64).Draw(t, "prev"))
		u := rapid.Float64Range(0, 1).Draw(t, "u")
		d := p.Delay(n, prev, u)

		base, limit := p.base(), p.cap()
		e := p.Envelope(n)
		if e < base || e > limit {
			t.Fatalf("envelope %v outside [base %v, cap %v]", e, base, limit)
		}
		lo, hi := time.Duration(0), e
		switch p.Jitter {
		case JitterEqual:
			lo = e / 2
		case JitterNone:
			lo = e
		case JitterDecorrelated:
			lo = base
			hi = limit
			if p3 := min(max(prev, base), limit); p3 <= limit/3 {
				hi = 3 * p3
			}
		}
		if d < lo || d > hi {
			t.Fatalf("%v jitter: delay %v outside [%v, %v] (n=%d prev=%v u=%v)", p.Jitter, d, lo, hi, n, prev, u)
		}
		if again := p.Delay(n, prev, u); again != d {
			t.Fatalf("not deterministic: %v then %v", d, again)
		}
	})
}

func TestDelayAtTheLargestCap(t *testing.T) {
	// float64(MaxInt64) rounds up to 2^63, which does not convert back to a
	// Duration: the computation must not overflow into a negative delay.
	for _, j := range []Jitter{JitterFull, JitterEqual, JitterDecorrelated, JitterNone} {
		p := Policy{Base: time.Second, Cap: math.MaxInt64, Jitter: j}
		for _, u := range []float64{0, 0.5, math.Nextafter(1, 0), 1} {
			d := p.Delay(1_000_000, math.MaxInt64, u)
			assert.GreaterOrEqual(t, d, time.Duration(0), "%v u=%v", j, u)
			if u >= 0.5 {
				assert.Greater(t, d, time.Duration(math.MaxInt64/4), "%v u=%v", j, u)
			}
		}
	}
}

func TestDelayClampsBadDraws(t *testing.T) {
	p := Policy{Base: time.Second, Cap: 8 * time.Second}
	for _, u := range []float64{math.NaN(), math.Inf(-1), -1, 0} {
		assert.Equal(t, time.Duration(0), p.Delay(3, 0, u), "u=%v", u)
	}
	for _, u := range []float64{1, 2, math.Inf(1)} {
		assert.Equal(t, 4*time.Second, p.Delay(3, 0, u), "u=%v", u)
	}
}

func TestDelayOnInvalidPolicyStaysSafe(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := Policy{
			Base:       time.Duration(rapid.Int64().Draw(t, "base")),
			Cap:        time.Duration(rapid.Int64().Draw(t, "cap")),
			Multiplier: rapid.Float64().Draw(t, "multiplier"),
			Jitter:     Jitter(rapid.IntRange(-2, 6).Draw(t, "jitter")),
		}
		d := p.Delay(rapid.Int().Draw(t, "n"), time.Duration(rapid.Int64().Draw(t, "prev")), rapid.Float64().Draw(t, "u"))
		if d < 0 || d > p.cap() {
			t.Fatalf("delay %v outside [0, %v] for %+v", d, p.cap(), p)
		}
	})
}

func TestDelayMeans(t *testing.T) {
	// With a fixed seed the test is deterministic; the tolerance is six
	// standard errors of a uniform draw's mean, so a correct implementation
	// passes with any seed too.
	const samples = 200_000
	r := rand.New(rand.NewPCG(1, 2))
	p := Policy{Base: 100 * time.Millisecond, Cap: 10 * time.Second}
	tests := []struct {
		jitter Jitter
		lo, hi float64 // the uniform range, in seconds
	}{
		{JitterFull, 0, 0.8},            // n=4: envelope 800ms
		{JitterEqual, 0.4, 0.8},         // upper half of it
		{JitterDecorrelated, 0.1, 0.75}, // prev 250ms: [Base, 3·prev]
	}
	for _, tt := range tests {
		p.Jitter = tt.jitter
		var sum float64
		for range samples {
			sum += p.Delay(4, 250*time.Millisecond, r.Float64()).Seconds()
		}
		mean := sum / samples
		want := (tt.lo + tt.hi) / 2
		se := (tt.hi - tt.lo) / math.Sqrt(12*samples)
		assert.InDelta(t, want, mean, 6*se, "%v jitter mean", tt.jitter)
	}
}

func TestDelays(t *testing.T) {
	t.Run("count is MaxAttempts-1", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			p := policyGen().Draw(t, "policy")
			p.MaxElapsed = 0
			seed := rapid.Uint64().Draw(t, "seed")
			var got []time.Duration
			for n, d := range p.Delays(rand.New(rand.NewPCG(seed, 0))) {
				if n != len(got)+1 {
					t.Fatalf("retry number %d, want %d", n, len(got)+1)
				}
				got = append(got, d)
			}
			if len(got) != p.maxAttempts()-1 {
				t.Fatalf("%d delays, want %d", len(got), p.maxAttempts()-1)
			}
			// Same seed, same sequence, computed by Delay.
			r := rand.New(rand.NewPCG(seed, 0))
			var prev time.Duration
			for i, d := range got {
				if want := p.Delay(i+1, prev, r.Float64()); want != d {
					t.Fatalf("retry %d: iterator gave %v, Delay gives %v", i+1, d, want)
				}
				prev = d
			}
		})
	})
	t.Run("sum never exceeds MaxElapsed", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			p := policyGen().Draw(t, "policy")
			p.MaxElapsed = time.Duration(rapid.Int64Range(1, int64(time.Minute)).Draw(t, "maxElapsed"))
			if rapid.Bool().Draw(t, "unlimited") {
				p.MaxAttempts = Unlimited
				p.Base = max(p.Base, time.Millisecond) // so the test ends quickly
			}
			var sum time.Duration
			for _, d := range p.Delays(rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 1))) {
				sum += d
				if sum > p.MaxElapsed {
					t.Fatalf("sum of delays %v exceeds MaxElapsed %v", sum, p.MaxElapsed)
				}
			}
		})
	})
	t.Run("break stops", func(t *testing.T) {
		calls := 0
		for range (Policy{MaxAttempts: 100}).Delays(nil) {
			calls++
			if calls == 3 {
				break
			}
		}
		assert.Equal(t, 3, calls)
	})
	t.Run("invalid policy yields nothing", func(t *testing.T) {
		for range (Policy{Base: -1}).Delays(nil) {
			t.Fatal("yielded a delay for an invalid policy")
		}
	})
}

func TestDelayDoesNotAllocate(t *testing.T) {
	for _, j := range []Jitter{JitterFull, JitterEqual, JitterDecorrelated, JitterNone} {
		p := Policy{Multiplier: 1.7, Jitter: j}
		allocs := testing.AllocsPerRun(1000, func() { _ = p.Delay(7, time.Second, 0.3) })
		assert.Zero(t, allocs, "%v", j)
	}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = Policy{}.Validate() }))
}

func TestJitterString(t *testing.T) {
	assert.Equal(t, "full", JitterFull.String())
	assert.Equal(t, "equal", JitterEqual.String())
	assert.Equal(t, "decorrelated", JitterDecorrelated.String())
	assert.Equal(t, "none", JitterNone.String())
	assert.Equal(t, "Jitter(7)", Jitter(7).String())
	assert.True(t, errors.Is(Policy{Jitter: 7}.Validate(), ErrInvalidPolicy))
}

func TestNext(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Jitter: JitterNone, MaxAttempts: 3, MaxElapsed: time.Second}
	d, err := p.Next(1, 0, 0, 0.5)
	assert.NoError(t, err)
	assert.Equal(t, 100*time.Millisecond, d)
	d, err = p.Next(2, 850*time.Millisecond, d, 0.5)
	assert.ErrorIs(t, err, ErrElapsedExhausted, "200ms more would end past 1s")
	assert.Equal(t, 200*time.Millisecond, d)
	_, err = p.Next(3, 0, 0, 0.5)
	assert.ErrorIs(t, err, ErrAttemptsExhausted)

	unlimited := Policy{MaxAttempts: Unlimited, MaxElapsed: time.Hour}
	_, err = unlimited.Next(1_000_000, 0, 0, 0.5)
	assert.NoError(t, err)
	assert.Equal(t, 0, unlimited.Attempts())
	assert.Equal(t, DefaultMaxAttempts, Policy{}.Attempts())
	assert.Equal(t, DefaultCap, Policy{}.MaxDelay())
	assert.Equal(t, time.Minute, Policy{Base: time.Minute}.MaxDelay())
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = p.Next(2, 0, 0, 0.5) }))
}
