package remirror

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Thousands of replication requests closed at once, each twice: every
// close is applied exactly once, the rest are refused as duplicates, and
// -race finds nothing (the 2011 crash was a race in exactly this).
func TestConcurrentClosesThousandsAtOnce(t *testing.T) {
	const volumes = 4000
	c, err := NewConcurrent(Settings{NoReconnect: true, MaxPerNode: Unlimited, MaxPerCluster: Unlimited, SearchRate: Unlimited, MaxElections: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if _, err := c.AddNode(2 * volumes); err != nil {
			t.Fatal(err)
		}
	}
	copies := make([]Action, 0, volumes)
	for v := range volumes {
		a, b := NodeID(v%4), NodeID(4+v%4)
		if _, err := c.AddVolume(1, a, b, 1); err != nil {
			t.Fatal(err)
		}
		acts, err := c.Step(t0, Input{Kind: PeerLost, Volume: VolumeID(v), Node: a})
		if err != nil || len(acts) != 1 || acts[0].Kind != Query {
			t.Fatalf("volume %d: %+v %v", v, acts, err)
		}
		acts, err = c.Step(t0, Input{Kind: SearchResult, Volume: VolumeID(v), Node: acts[0].To, Attempt: acts[0].Attempt, OK: true})
		if err != nil || len(acts) != 1 || acts[0].Kind != Copy {
			t.Fatalf("volume %d: %+v %v", v, acts, err)
		}
		copies = append(copies, acts[0])
	}
	var applied, duplicates, elects atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, cp := range copies {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				acts, err := c.Step(t0, Input{Kind: CopyResult, Volume: cp.Volume, Attempt: cp.Attempt, OK: true})
				switch {
				case err == nil:
					applied.Add(1)
					for _, a := range acts {
						if a.Kind == Elect {
							elects.Add(1)
						}
					}
				case errors.Is(err, ErrDuplicate):
					duplicates.Add(1)
				default:
					t.Errorf("volume %d: %v", cp.Volume, err)
				}
				c.Stats()
				c.VolumeState(cp.Volume)
			}()
		}
	}
	close(start)
	wg.Wait()
	if applied.Load() != volumes || duplicates.Load() != volumes || elects.Load() != volumes {
		t.Fatalf("applied %d, duplicates %d, elections %d; want %d each", applied.Load(), duplicates.Load(), elects.Load(), volumes)
	}
	s := c.Stats()
	if s.ByState[Electing] != volumes || s.InFlight != 0 || s.Releases != volumes {
		t.Fatalf("stats %+v", s)
	}
	if _, ok := c.NextTick(); ok {
		t.Fatal("timers armed with nothing to retry")
	}
	if acts, err := c.Tick(t0.Add(time.Second)); err != nil || acts != nil {
		t.Fatalf("Tick: %+v %v", acts, err)
	}
	if _, _, ok := c.Primary(0); ok {
		t.Fatal("a volume still electing has a writable primary")
	}
}

func TestConcurrentBadSettings(t *testing.T) {
	if _, err := NewConcurrent(Settings{MaxPerNode: -7}); !errors.Is(err, ErrInvalidSettings) {
		t.Fatalf("err %v", err)
	}
}
