package main

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlowZoneRelearnsWithinLearnTime drives the guarded design's server
// side (learned timeout, shedhttp, Partition, backend) in a synctest
// bubble with a zone that needs more than its cap (rate × delay = 30 calls
// in flight against 12 slots at pool 16), and checks the promise the
// settled-window bar rests on: from learnTime after the zone slowed down,
// its adaptive limit has re-learned, so that it keeps at least servedShare
// of the slots it can use busy. With 16-sample windows the limit fell to
// its floor and grew back one window per round trip, seven windows in
// all, and the zone held 7.0-7.4 of its 12 slots at pool 16 (and 26.7 of
// the 30 it needs at pool 48, seed 2) over the second after learnTime.
func TestSlowZoneRelearnsWithinLearnTime(t *testing.T) {
	for _, pool := range []int{16, 48} {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("pool%d/seed%d", pool, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					busy, limit := relearnRun(t, pool, seed)
					// The slots the zone can use: its cap, or rate × delay.
					need := servedShare * min(float64(zoneCap(pool)), relearnRate*relearnDelay.Seconds())
					assert.GreaterOrEqual(t, busy, need,
						"pool %d seed %d: %.2f of %d slots busy on average after learnTime (mean limit %.2f), want at least %.2f",
						pool, seed, busy, zoneCap(pool), limit, need)
				})
			})
		}
	}
}

const (
	relearnRate  = 100
	relearnDelay = 300 * time.Millisecond
)

// relearnRun offers relearnRate to a zone that slows to relearnDelay per call
// after a second, and returns its mean calls in flight and mean limit
// over the second that follows learnTime after the slowdown.
func relearnRun(t *testing.T, pool int, seed uint64) (busy, limit float64) {
	cfg := config{rate: relearnRate, sickDelay: relearnDelay, fast: defaultFast, pool: pool,
		clientWait: 2 * time.Second, seed: seed}
	g, err := newGuarded(cfg)
	require.NoError(t, err)
	start := time.Now()
	sick := time.Second
	be := newBackend(cfg.fast, cfg.sickDelay, seed, 0)
	be.sickFrom, be.sickUntil = start.Add(sick), start.Add(time.Hour)
	backends := []*backend{be, newBackend(cfg.fast, cfg.sickDelay, seed, 1), newBackend(cfg.fast, cfg.sickDelay, seed, 2)}
	inFlight := make([]atomic.Int64, len(zones))
	h, err := g.handler(backends, inFlight)
	require.NoError(t, err)

	from, to := sick+learnTime(cfg), sick+learnTime(cfg)+time.Second
	var samples, sumBusy, sumLimit float64
	var wg sync.WaitGroup
	wg.Go(func() {
		for at := time.Since(start); at < to; at = time.Since(start) {
			if at >= from {
				st, _ := g.zones.StatsFor(zones[0])
				l, _ := g.zones.LimitFor(zones[0])
				samples++
				sumBusy += float64(st.InFlight)
				sumLimit += float64(l)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	for time.Since(start) < to {
		wg.Go(func() {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/az/"+zones[0]+"/describe", nil))
		})
		time.Sleep(time.Second / time.Duration(cfg.rate))
	}
	wg.Wait()
	require.Positive(t, samples)
	return sumBusy / samples, sumLimit / samples
}
