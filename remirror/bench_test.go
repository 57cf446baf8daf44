package remirror

import (
	"testing"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// The hot path of a reconnect: a mirror lost, a probe answered, an
// election won. Three Steps per iteration.
func BenchmarkReconnectCycle(b *testing.B) {
	e := cluster(b, Settings{}, 4, 1<<20)
	now := t0
	tok := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		acts, _ := e.Step(now, Input{Kind: PeerLost, Volume: 0, Node: 0})
		acts, _ = e.Step(now, Input{Kind: ProbeResult, Volume: 0, Attempt: acts[0].Attempt, OK: true})
		tok++
		if _, err := e.Step(now, Input{Kind: Elected, Volume: 0, Node: 0, Attempt: acts[0].Attempt, Token: fence.Token(tok)}); err != nil {
			b.Fatal(err)
		}
	}
}

// A full re-mirror with hints over 1,000 nodes: search, copy, release,
// election.
func BenchmarkRemirrorCycle(b *testing.B) {
	e, _ := NewEngine(Settings{NoReconnect: true, SearchRate: Unlimited, MaxPerCluster: Unlimited}, nil)
	for range 1000 {
		e.AddNode(1 << 40)
	}
	e.AddVolume(1, 0, 1, 1)
	now := t0
	tok := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		a, _, _ := e.Replicas(0)
		acts, _ := e.Step(now, Input{Kind: PeerLost, Volume: 0, Node: a})
		q := acts[0]
		acts, _ = e.Step(now, Input{Kind: SearchResult, Volume: 0, Node: q.To, Attempt: q.Attempt, OK: true})
		acts, _ = e.Step(now, Input{Kind: CopyResult, Volume: 0, Attempt: acts[0].Attempt, OK: true})
		tok++
		if _, err := e.Step(now, Input{Kind: Elected, Volume: 0, Node: a, Attempt: acts[1].Attempt, Token: fence.Token(tok)}); err != nil {
			b.Fatal(err)
		}
	}
}

// Tick with many volumes backing off: arming and firing timers.
func BenchmarkTick(b *testing.B) {
	e, _ := NewEngine(Settings{}, nil)
	for range 100 {
		e.AddNode(1 << 20)
	}
	const vols = 10_000
	for v := range vols {
		e.AddVolume(1, NodeID(v%100), NodeID((v+1)%100), 1)
	}
	now := t0
	pending := make([]Input, 0, vols)
	for v := range vols {
		acts, _ := e.Step(now, Input{Kind: PeerLost, Volume: VolumeID(v), Node: NodeID(v % 100)})
		pending = append(pending, Input{Kind: ProbeResult, Volume: VolumeID(v), Attempt: acts[0].Attempt})
	}
	b.ReportAllocs()
	for b.Loop() {
		// Every probe fails; the volumes back off and probe again.
		for _, in := range pending {
			e.Step(now, in)
		}
		pending = pending[:0]
		now = now.Add(20 * time.Second)
		acts, _ := e.Tick(now)
		for _, a := range acts {
			pending = append(pending, Input{Kind: ProbeResult, Volume: a.Volume, Attempt: a.Attempt})
		}
	}
	b.ReportMetric(float64(vols), "volumes/op")
}

// Deleting the oldest volume of a node that holds 100,000: a node's list of
// volumes is edited in O(1), not searched (it was 90µs a delete at 200,000).
func BenchmarkDeleteOnCrowdedNode(b *testing.B) {
	e, _ := NewEngine(Settings{}, nil)
	e.AddNode(1 << 40)
	e.AddNode(1 << 40)
	const crowd = 100_000
	for range crowd {
		e.AddVolume(1, 0, 1, 1)
	}
	next := VolumeID(0)
	b.ReportAllocs()
	for b.Loop() {
		v, err := e.AddVolume(1, 0, 1, 1)
		if err != nil {
			b.Fatal(err)
		}
		_ = v
		if _, err := e.Step(t0, Input{Kind: VolumeDeleted, Volume: next}); err != nil {
			b.Fatal(err)
		}
		next++
	}
}
