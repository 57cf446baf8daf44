package dnsplan

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/fence"
)

func watchPlan(g fence.Token) Plan {
	return Plan{Generation: g, Endpoints: map[string][]Target{"api": {{Addr: netip.MustParseAddr("192.0.2.1"), Weight: 1}}}}
}

// TestMemoryStoreWaitNewer: WaitNewer returns at once when a newer plan
// was put, wakes on a Put, survives the deletion of the plan it announces,
// and ends with its context.
func TestMemoryStoreWaitNewer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &MemoryStore{}
		ctx := context.Background()
		if err := s.Put(ctx, watchPlan(3)); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, 3); err != nil {
			t.Fatal(err)
		}
		if h, err := s.WaitNewer(ctx, 2); err != nil || h != 3 {
			t.Fatalf("WaitNewer(2) after a deleted 3 = %d, %v; want 3", h, err)
		}
		done := make(chan fence.Token)
		go func() {
			h, err := s.WaitNewer(ctx, 3)
			if err != nil {
				t.Error(err)
			}
			done <- h
		}()
		synctest.Wait()
		select {
		case h := <-done:
			t.Fatalf("WaitNewer(3) returned %d before any newer plan", h)
		default:
		}
		time.Sleep(time.Minute)
		if err := s.Put(ctx, watchPlan(5)); err != nil {
			t.Fatal(err)
		}
		if h := <-done; h != 5 {
			t.Fatalf("WaitNewer(3) = %d, want 5", h)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := s.WaitNewer(cctx, 5); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitNewer past its deadline = %v, want DeadlineExceeded", err)
		}
		var nilStore *MemoryStore
		if _, err := nilStore.WaitNewer(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("nil store: %v", err)
		}
		//lint:ignore SA1012 the nil context is the case under test
		if _, err := s.WaitNewer(nil, 0); !errors.Is(err, ErrInvalidArgument) { //nolint:staticcheck
			t.Fatalf("nil context: %v", err)
		}
	})
}
