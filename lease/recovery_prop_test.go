package lease_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stormguard/stormguard/lease"
	"pgregory.net/rapid"
)

// TestRecoveryProperties drives a Recovery with random costs and failures
// and checks at every step: attempts in flight never exceed Workers; no
// attempt is handed out with a deadline at or before its start plus the
// cheapest possible cost; a key is never handed out twice at once; and the
// keys are always exactly accounted for (established + pending + failed).
func TestRecoveryProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		workers := rapid.IntRange(1, 4).Draw(t, "workers")
		keys := rapid.IntRange(1, 30).Draw(t, "keys")
		ttl := time.Duration(rapid.IntRange(100, 1000).Draw(t, "ttl")) * time.Millisecond
		timeout := time.Duration(rapid.Int64Range(int64(ttl)/10, int64(ttl)).Draw(t, "timeout"))
		r, err := lease.NewRecovery[int](lease.RecoveryConfig{
			Workers: workers, MaxQueue: rapid.IntRange(1, 8).Draw(t, "maxQueue"),
			TTL: ttl, AttemptTimeout: timeout,
		})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		for k := range keys {
			_ = r.Add(now, k)
		}
		type run struct {
			a   lease.Attempt[int]
			end time.Time
		}
		var running []run
		busy := map[int]bool{}
		take := func(as []lease.Attempt[int]) {
			for _, a := range as {
				if busy[a.Key] {
					t.Fatalf("key %d handed out twice at once", a.Key)
				}
				if !a.Deadline.After(a.Started) {
					t.Fatalf("attempt %+v handed out at or after its deadline", a)
				}
				busy[a.Key] = true
				c := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(timeout)).Draw(t, "cost"))
				running = append(running, run{a, a.Started.Add(c)})
			}
			if len(running) > workers {
				t.Fatalf("%d attempts in flight, %d workers", len(running), workers)
			}
		}
		take(r.Start(now, nil))
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			wake, ok := r.Wake()
			if len(running) > 0 && rapid.Bool().Draw(t, "finish") || !ok {
				if len(running) == 0 {
					break
				}
				i := rapid.IntRange(0, len(running)-1).Draw(t, "which")
				f := running[i]
				running = append(running[:i], running[i+1:]...)
				delete(busy, f.a.Key)
				now = laterTime(now, f.end)
				var ferr error
				if rapid.IntRange(0, 9).Draw(t, "fail") == 0 {
					ferr = errors.New("refused")
				}
				take(r.Finish(now, f.a, ferr, nil))
			} else {
				now = laterTime(now, wake)
				take(r.Start(now, nil))
			}
			p := r.Progress(now)
			if p.Established+p.Pending+p.Failed != keys {
				t.Fatalf("established %d + pending %d + failed %d != %d keys", p.Established, p.Pending, p.Failed, keys)
			}
			if p.InFlight != len(running) {
				t.Fatalf("Progress.InFlight %d, running %d", p.InFlight, len(running))
			}
		}
	})
}

func laterTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
