package lease_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/lease"
)

// BenchmarkMemoryGrant grants and releases one resource: the epoch advances
// every iteration.
func BenchmarkMemoryGrant(b *testing.B) {
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		l, err := m.GrantAt(now, "droplet-1", "dwfm-1", time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.ReleaseAt(now, l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryRenew renews one lease, the hot path of a keeper.
func BenchmarkMemoryRenew(b *testing.B) {
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	l, _ := m.GrantAt(t0, "droplet-1", "dwfm-1", time.Hour)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		var err error
		if l, err = m.RenewAt(now, l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryRenewParallel renews a lease per goroutine on one table.
func BenchmarkMemoryRenewParallel(b *testing.B) {
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		l, err := m.GrantAt(t0, "droplet-"+strconv.FormatInt(n.Add(1), 10), "dwfm", time.Hour)
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if l, err = m.RenewAt(t0, l); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRecoveryPerItem measures the scheduler's overhead per attempt:
// each iteration establishes one lease (Start or Finish hands it out,
// Finish reports it), with 64 workers and a backlog refilled as it drains.
func BenchmarkRecoveryPerItem(b *testing.B) {
	r, err := lease.NewRecovery[int](lease.RecoveryConfig{Workers: 64, TTL: time.Hour, AttemptTimeout: time.Minute, InitialCost: time.Microsecond})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	key := 0
	for range 1024 {
		_ = r.Add(now, key)
		key++
	}
	running := r.Start(now, nil)
	buf := make([]lease.Attempt[int], 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		a := running[0]
		running = running[1:]
		buf = r.Finish(now, a, nil, buf[:0])
		running = append(running, buf...)
		_ = r.Add(now, key)
		key++
		if len(running) == 0 {
			running = append(running, r.Start(now, nil)...)
		}
	}
}
