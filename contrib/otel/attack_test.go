package stormotel

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/shed"
)

// panicky is a key whose String panics (fmt prints "%!v(PANIC=...)").
type panicky struct{ n int }

func (p panicky) String() string { panic("no") }

// TestAttackZeroValuesAndBadKeys: a Meter not made by New, a zero
// Registration, and keys whose formatting panics are refused or harmless,
// never a panic.
func TestAttackZeroValuesAndBadKeys(t *testing.T) {
	q := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 1}))
	var zero Meter
	if _, err := zero.RegisterQueue("api", q); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero Meter: %v", err)
	}
	if _, err := zero.RegisterEnactorEvents("dns"); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero Meter, sink: %v", err)
	}
	if err := zero.Close(); err != nil {
		t.Errorf("zero Meter Close: %v", err)
	}
	var r Registration
	if err := r.Unregister(); err != nil {
		t.Errorf("zero Registration: %v", err)
	}
	var ee EnactorEvents
	ee.Observe(dnsplanEvent())
	if err := ee.Unregister(); err != nil {
		t.Errorf("zero EnactorEvents: %v", err)
	}

	m, _ := newMeter(t)
	p := must[*shed.Partition[panicky]](t)(shed.NewPartition(shed.PartitionConfig[panicky]{Total: 4}))
	_, err := RegisterPartition(m, "x", p, []panicky{{1}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("key whose String panics: %v", err)
	}
	t.Log(err)
}

func dnsplanEvent() dnsplan.Event { return dnsplan.Event{Kind: dnsplan.EventApplied} }

// TestAttackSchedulerDrivenWhileCollected: a Scheduler is not safe for
// concurrent use, so the registration reads its Stats under the lock its
// driver holds; driving it while collecting is race-free (go test -race).
func TestAttackSchedulerDrivenWhileCollected(t *testing.T) {
	m, r := newMeter(t)
	sc := must[*shed.Scheduler[int]](t)(shed.NewScheduler[int](shed.QueueConfig{Workers: 1, MaxQueue: 8}, nil))
	var mu sync.Mutex
	must[*Registration](t)(RegisterScheduler(m, "jobs", sc, &mu))
	done := make(chan struct{})
	go func() {
		defer close(done)
		now := time.Unix(0, 0)
		for i := range 2000 {
			now = now.Add(time.Millisecond)
			mu.Lock()
			sc.Push(now, shed.Item[int]{Value: i})
			sc.Next(now)
			sc.Done(now)
			mu.Unlock()
		}
	}()
	for range 50 {
		collect(t, r)
	}
	<-done
	got := collect(t, r)
	mu.Lock()
	s := sc.Stats()
	mu.Unlock()
	checkTable(t, got, shedTables[kindScheduler], s, name("jobs"))
	if _, err := RegisterScheduler[int](m, "nolock", sc, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil lock: %v", err)
	}
}
