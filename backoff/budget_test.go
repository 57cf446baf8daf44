package backoff

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestNewBudgetValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   BudgetConfig
		wants []string
	}{
		{"zero value", BudgetConfig{}, nil},
		{"full ratio", BudgetConfig{Ratio: 1, MinRetriesPerSecond: 0.5, MaxTokens: 1}, nil},
		{"no floor", BudgetConfig{NoFloor: true}, nil},
		{"no floor ignores the floor's rate", BudgetConfig{NoFloor: true, MinRetriesPerSecond: 1e12}, nil},
		{"negative ratio", BudgetConfig{Ratio: -0.1}, []string{"Ratio -0.1 is outside (0, 1]"}},
		{"ratio above one", BudgetConfig{Ratio: 1.5}, []string{"Ratio 1.5"}},
		{"NaN ratio", BudgetConfig{Ratio: math.NaN()}, []string{"Ratio NaN"}},
		{"negative floor", BudgetConfig{MinRetriesPerSecond: -1}, []string{"MinRetriesPerSecond -1 is not a positive finite number"}},
		{"infinite floor", BudgetConfig{MinRetriesPerSecond: math.Inf(1)}, []string{"MinRetriesPerSecond +Inf"}},
		{"absurd floor", BudgetConfig{MinRetriesPerSecond: 1e12}, []string{"above 1e9"}},
		{"negative tokens", BudgetConfig{MaxTokens: -1}, []string{"MaxTokens -1 is outside [1, 1e9]"}},
		{"absurd tokens", BudgetConfig{MaxTokens: 2e9}, []string{"MaxTokens 2000000000"}},
		{"all at once", BudgetConfig{Ratio: 2, MinRetriesPerSecond: math.NaN(), MaxTokens: -5}, []string{"Ratio", "MinRetriesPerSecond", "MaxTokens"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBudget(tt.cfg)
			if len(tt.wants) == 0 {
				require.NoError(t, err)
				require.NotNil(t, b)
				return
			}
			assert.Nil(t, b)
			assert.ErrorIs(t, err, ErrInvalidBudget)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestBudgetRatio(t *testing.T) {
	b, err := NewBudget(BudgetConfig{Ratio: 0.1, NoFloor: true})
	require.NoError(t, err)
	now := time.Unix(0, 0)
	assert.False(t, b.WithdrawAt(now), "a fresh budget without floor has nothing to give")
	for range 10 {
		b.Deposit()
	}
	assert.InDelta(t, 1.0, b.Tokens(), 1e-5)
	// 10 deposits of 0.1 may round to just under one token: fixed point
	// rounds deposits down, never in the retries' favour.
	b.Deposit()
	assert.True(t, b.WithdrawAt(now))
	assert.False(t, b.WithdrawAt(now))
	assert.Equal(t, BudgetStats{Tokens: b.Tokens(), Retries: 1, Refused: 2}, b.Stats())
}

func TestBudgetCapsBankedTokens(t *testing.T) {
	b, err := NewBudget(BudgetConfig{Ratio: 1, MaxTokens: 5, NoFloor: true})
	require.NoError(t, err)
	for range 1000 {
		b.Deposit()
	}
	assert.Equal(t, 5.0, b.Tokens())
	now := time.Now()
	for range 5 {
		assert.True(t, b.WithdrawAt(now))
	}
	assert.False(t, b.WithdrawAt(now), "a long healthy spell banks at most MaxTokens")
}

func TestBudgetFloor(t *testing.T) {
	b, err := NewBudget(BudgetConfig{MinRetriesPerSecond: 2})
	require.NoError(t, err)
	// Simulated time far from the real clock works too.
	t0 := time.Date(2011, 4, 21, 0, 47, 0, 0, time.UTC)
	assert.True(t, b.WithdrawAt(t0))
	assert.True(t, b.WithdrawAt(t0), "burst of two")
	assert.False(t, b.WithdrawAt(t0))
	assert.False(t, b.WithdrawAt(t0.Add(400*time.Millisecond)))
	assert.True(t, b.WithdrawAt(t0.Add(500*time.Millisecond)), "one more every 500ms")
	assert.False(t, b.WithdrawAt(t0.Add(500*time.Millisecond)))
	assert.True(t, b.WithdrawAt(t0.Add(time.Hour)))
	assert.True(t, b.WithdrawAt(t0.Add(time.Hour)))
	assert.False(t, b.WithdrawAt(t0.Add(time.Hour)), "idle time refills only the burst")
}

func TestBudgetFloorWithAnyClock(t *testing.T) {
	// A simulation's clock may start anywhere, the zero Time included.
	for _, t0 := range []time.Time{{}, time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)} {
		b, err := NewBudget(BudgetConfig{MinRetriesPerSecond: 1})
		require.NoError(t, err)
		granted := 0
		for i := range 100 {
			if b.WithdrawAt(t0.Add(time.Duration(i) * time.Second)) {
				granted++
			}
		}
		assert.Equal(t, 100, granted, "one per second from %v", t0)
	}
}

// TestBudgetBoundProperty: over any sequence of deposits, withdrawals and
// clock advances, admitted retries ≤ Ratio·deposits + burst + rate·elapsed.
func TestBudgetBoundProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := BudgetConfig{
			Ratio:               rapid.Float64Range(0.001, 1).Draw(t, "ratio"),
			MinRetriesPerSecond: rapid.Float64Range(0.01, 100).Draw(t, "rate"),
			NoFloor:             rapid.Bool().Draw(t, "noFloor"),
			MaxTokens:           rapid.IntRange(1, 1000).Draw(t, "maxTokens"),
		}
		b, err := NewBudget(cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Unix(rapid.Int64Range(-1e9, 1e9).Draw(t, "start"), 0)
		now := start
		var deposits, admitted int
		steps := rapid.IntRange(1, 500).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				b.Deposit()
				deposits++
			case 1:
				if b.WithdrawAt(now) {
					admitted++
				}
			case 2:
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(2*time.Second)).Draw(t, "advance")))
			}
			bound := cfg.Ratio * float64(deposits)
			if !cfg.NoFloor {
				bound += math.Max(1, math.Ceil(cfg.MinRetriesPerSecond)) + cfg.MinRetriesPerSecond*now.Sub(start).Seconds()
			}
			if float64(admitted) > bound+1e-9 {
				t.Fatalf("admitted %d retries > bound %.3f (deposits %d, elapsed %v)", admitted, bound, deposits, now.Sub(start))
			}
			if tok := b.Tokens(); tok < 0 || tok > float64(cfg.MaxTokens) {
				t.Fatalf("tokens %v outside [0, %d]", tok, cfg.MaxTokens)
			}
		}
		if s := b.Stats(); s.Retries != int64(admitted) {
			t.Fatalf("stats say %d retries, saw %d", s.Retries, admitted)
		}
	})
}

// TestBudgetConcurrent hammers one budget from many goroutines; with -race
// it checks the lock-free paths, and the bound must hold exactly.
func TestBudgetConcurrent(t *testing.T) {
	b, err := NewBudget(BudgetConfig{Ratio: 0.25, NoFloor: true, MaxTokens: 1_000_000})
	require.NoError(t, err)
	const workers, perWorker = 8, 5000
	var wg sync.WaitGroup
	admitted := make([]int, workers)
	now := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				b.Deposit()
				if b.WithdrawAt(now) {
					admitted[w]++
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, a := range admitted {
		total += a
	}
	assert.LessOrEqual(t, float64(total), 0.25*workers*perWorker)
	assert.Greater(t, total, 0)
	s := b.Stats()
	assert.Equal(t, int64(total), s.Retries)
	assert.Equal(t, int64(workers*perWorker-total), s.Refused)
	assert.InDelta(t, 0.25*workers*perWorker-float64(total), b.Tokens(), 1, "tokens are conserved")
}

func TestBudgetDoesNotAllocate(t *testing.T) {
	b, err := NewBudget(BudgetConfig{})
	require.NoError(t, err)
	now := time.Now()
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		b.Deposit()
		b.WithdrawAt(now)
	}))
}

func TestZeroBudgetRefuses(t *testing.T) {
	var b Budget
	b.Deposit()
	assert.False(t, b.Withdraw())
}
