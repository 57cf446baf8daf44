package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

// childEnv is the environment variable that makes the binary a member of
// the fleet instead of its parent: it holds the member's childConfig as
// JSON.
const childEnv = "DNSFLEET_CHILD"

// childConfig is what the parent tells a member.
type childConfig struct {
	Role      string        `json:"role"` // "planner" or "enactor"
	Name      string        `json:"name"` // "planner", "A", "B", "C"
	Mode      string        `json:"mode"` // "2025" or "dnsplan"
	Etcd      string        `json:"etcd"`
	DNS       string        `json:"dns"`
	Secret    string        `json:"secret"`
	Retention int           `json:"retention"`
	PlanEvery time.Duration `json:"plan_every"`
}

// event is one line a member writes on its stdout, and one entry of the
// parent's timeline.
type event struct {
	T        int64  `json:"t"` // Unix nanoseconds
	Who      string `json:"who"`
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint,omitempty"`
	Gen      uint64 `json:"gen,omitempty"`
	Have     uint64 `json:"have,omitempty"`
	N        int    `json:"n,omitempty"`
	Msg      string `json:"msg,omitempty"`
}

// emitter writes events as JSON lines; errors at most every half second.
type emitter struct {
	mu      sync.Mutex
	w       io.Writer
	who     string
	lastErr time.Time
}

func (em *emitter) emit(ev event) {
	ev.Who = em.who
	ev.T = time.Now().UnixNano()
	b, _ := json.Marshal(ev)
	em.mu.Lock()
	defer em.mu.Unlock()
	if ev.Kind == "error" {
		if time.Since(em.lastErr) < 500*time.Millisecond {
			return
		}
		em.lastErr = time.Now()
	}
	em.w.Write(append(b, '\n'))
}

// opTimeout bounds every call to etcd or BIND from a member.
const opTimeout = 2 * time.Second

// runChild runs a member of the fleet until its stdin closes or it is
// signalled, and returns its exit status.
func runChild(raw string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "dnsfleet member: bad %s: %v\n", childEnv, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	em := &emitter{w: os.Stdout, who: cfg.Name}
	f := newFaults(em)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// Commands from the parent; end of input means the parent is done.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			f.command(sc.Text())
		}
		cancel()
	}()
	client, err := newEtcdClient(cfg.Etcd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dnsfleet %s: etcd client: %v\n", cfg.Name, err)
		return 1
	}
	defer client.Close()
	store, err := newPlanStore(client)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dnsfleet %s: plan store: %v\n", cfg.Name, err)
		return 1
	}
	switch cfg.Role {
	case "planner":
		err = runPlanner(ctx, cfg, store, em)
	case "enactor":
		var provider *rfc2136.Provider
		provider, err = rfc2136.New(rfc2136.Config{Server: cfg.DNS, Zone: zone, KeyName: keyName, Secret: cfg.Secret, TTL: 5, Timeout: time.Second})
		if err == nil {
			if cfg.Mode == "2025" {
				err = run2025(ctx, cfg, store, provider, f, em)
			} else {
				err = runDnsplan(ctx, cfg, store, provider, f, em)
			}
		}
	default:
		err = fmt.Errorf("unknown role %q", cfg.Role)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "dnsfleet %s: %v\n", cfg.Name, err)
		return 1
	}
	return 0
}

// faults are the fault points of a member, armed by the parent's
// commands: stall before writing the regional endpoint; hold before a
// pass; pause before the clean-up of a pass at or above a generation;
// pause after the first write of a pass (to be killed mid-pass).
type faults struct {
	em           *emitter
	mu           sync.Mutex
	stall        chan struct{} // armed if not nil; closed by "resume"
	stallArmed   bool
	hold         chan struct{}
	cleanupFrom  uint64
	cleanupGo    chan struct{}
	midpassArmed bool
}

func newFaults(em *emitter) *faults { return &faults{em: em} }

func (f *faults) command(line string) {
	word, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch word {
	case "stall":
		f.stall, f.stallArmed = make(chan struct{}), true
	case "resume":
		if f.stall != nil {
			close(f.stall)
			f.stall = nil
		}
	case "hold":
		if f.hold == nil {
			f.hold = make(chan struct{})
		}
	case "release":
		if f.hold != nil {
			close(f.hold)
			f.hold = nil
		}
	case "pause-cleanup":
		n, _ := strconv.ParseUint(arg, 10, 64)
		f.cleanupFrom, f.cleanupGo = n, make(chan struct{})
	case "go-cleanup":
		if f.cleanupGo != nil {
			close(f.cleanupGo)
			f.cleanupGo = nil
		}
	case "pause-midpass":
		f.midpassArmed = true
	}
}

func wait(ctx context.Context, c <-chan struct{}) {
	select {
	case <-ctx.Done():
	case <-c:
	}
}

// beforePass holds while the parent says so.
func (f *faults) beforePass(ctx context.Context) {
	f.mu.Lock()
	h := f.hold
	f.mu.Unlock()
	if h != nil {
		f.em.emit(event{Kind: "held"})
		wait(ctx, h)
	}
}

// beforeWrite stalls before a write of plan gen to the regional endpoint,
// once per "stall".
func (f *faults) beforeWrite(ctx context.Context, endpoint string, gen, have fence.Token) {
	if endpoint != regional {
		return
	}
	f.mu.Lock()
	armed, c := f.stallArmed, f.stall
	f.stallArmed = false
	f.mu.Unlock()
	if armed && c != nil {
		f.em.emit(event{Kind: "stalled", Endpoint: endpoint, Gen: uint64(gen), Have: uint64(have)})
		wait(ctx, c)
		f.em.emit(event{Kind: "resumed", Endpoint: endpoint, Gen: uint64(gen)})
	}
}

// afterWrite pauses for good after the first write of a pass (written
// is the writes of the pass so far), once per "pause-midpass": the
// parent kills the member there.
func (f *faults) afterWrite(ctx context.Context, gen fence.Token, written int) {
	if written != 1 {
		return
	}
	f.mu.Lock()
	armed := f.midpassArmed
	f.midpassArmed = false
	f.mu.Unlock()
	if armed {
		f.em.emit(event{Kind: "paused_midpass", Gen: uint64(gen), N: written})
		<-ctx.Done()
	}
}

// beforeCleanup pauses before the clean-up of a pass of plan gen, once
// per "pause-cleanup", if gen is at or above the one named.
func (f *faults) beforeCleanup(ctx context.Context, gen fence.Token) {
	f.mu.Lock()
	from, c := f.cleanupFrom, f.cleanupGo
	if from == 0 || uint64(gen) < from {
		f.mu.Unlock()
		return
	}
	f.cleanupFrom = 0
	f.mu.Unlock()
	f.em.emit(event{Kind: "paused_cleanup", Gen: uint64(gen)})
	wait(ctx, c)
}

// report is the health checks the planner sees: every target healthy,
// its capacity drifting with time, so that every plan differs.
func report(now time.Time) dnsplan.Report {
	r := dnsplan.Report{}
	tick := now.UnixMilli() / 250
	for j, ep := range endpoints {
		for k := range 4 {
			r[ep] = append(r[ep], dnsplan.TargetHealth{
				Addr:     netip.AddrFrom4([4]byte{10, byte(j + 1), 0, byte(k + 1)}),
				Capacity: uint32(8 + (tick+int64(k))%5),
				Healthy:  true,
			})
		}
	}
	return r
}

// publisher is the plan store as the planner sees it: Publish takes the
// generation from a fence.Sequencer on etcd, so that a restarted planner
// publishes above every plan published before, whatever it remembers.
type publisher interface {
	dnsplan.Store
	Publish(ctx context.Context, p dnsplan.Plan) (fence.Token, error)
	CollectOrphans(ctx context.Context) (int, error)
}

// runPlanner publishes a plan every PlanEvery, continuing from the
// store's newest plan; a plan etcd did not take is offered again (under
// a new generation). After its first plan, and after the first plan
// that follows a failed Publish, it deletes the chunks of plans that
// never committed (a planner killed, or etcd stopped, in the middle of a
// Publish leaves them), as the PlanStore's users should now and then.
func runPlanner(ctx context.Context, cfg childConfig, store publisher, em *emitter) error {
	var prev *dnsplan.Plan
	for {
		c, cancel := context.WithTimeout(ctx, opTimeout)
		p, err := store.Latest(c)
		cancel()
		if err == nil {
			prev = &p
			break
		}
		if errors.Is(err, dnsplan.ErrNotFound) {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		em.emit(event{Kind: "error", Msg: "reading the newest plan: " + err.Error()})
		time.Sleep(100 * time.Millisecond)
	}
	planner, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Previous: prev})
	if err != nil {
		return err
	}
	em.emit(event{Kind: "ready", Gen: uint64(planner.Last().Generation)})
	t := time.NewTicker(cfg.PlanEvery)
	defer t.Stop()
	var pending *dnsplan.Plan
	collect := true // orphaned chunks may have been left: collect them
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if pending == nil {
				p, err := planner.Next(now, report(now))
				if err != nil {
					return err
				}
				pending = &p
			}
			c, cancel := context.WithTimeout(ctx, opTimeout)
			g, err := store.Publish(c, *pending)
			cancel()
			if err != nil {
				em.emit(event{Kind: "error", Msg: "publishing: " + err.Error()})
				collect = true
				continue
			}
			em.emit(event{Kind: "published", Gen: uint64(g)})
			pending = nil
			if collect {
				c, cancel := context.WithTimeout(ctx, opTimeout)
				n, err := store.CollectOrphans(c)
				cancel()
				if err != nil {
					em.emit(event{Kind: "error", Msg: "collecting the chunks of plans that never committed: " + err.Error()})
					continue
				}
				em.emit(event{Kind: "orphans_collected", N: n})
				collect = false
			}
		}
	}
}

// pollEvery is how often an idle enactor asks for a newer plan; every
// repassEvery it makes a pass all the same.
const (
	pollEvery   = 50 * time.Millisecond
	repassEvery = time.Second
)

// waitNewer returns once the store's newest plan is above g, repassEvery
// has passed, or ctx ends. It watches if the store can (a
// dnsplan.Watcher), and polls otherwise.
func waitNewer(ctx context.Context, store dnsplan.Store, g fence.Token) {
	if w, ok := store.(dnsplan.Watcher); ok {
		c, cancel := context.WithTimeout(ctx, repassEvery)
		defer cancel()
		if _, err := w.WaitNewer(c, g); err != nil && c.Err() == nil {
			// The store is unreachable: wait a little before the pass
			// that will say so.
			select {
			case <-c.Done():
			case <-time.After(pollEvery):
			}
		}
		return
	}
	deadline := time.Now().Add(repassEvery)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c, cancel := context.WithTimeout(ctx, opTimeout)
		p, err := store.Latest(c)
		cancel()
		if err == nil && p.Generation > g {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery):
		}
	}
}

// runDnsplan drives a dnsplan.Enactor action by action (Next, Execute,
// Deliver), so that the example's fault points sit between its read and
// its write.
func runDnsplan(ctx context.Context, cfg childConfig, store dnsplan.Store, provider dnsplan.Provider, f *faults, em *emitter) error {
	kinds := map[dnsplan.EventKind]string{
		dnsplan.EventApplied: "applied", dnsplan.EventRepaired: "repaired", dnsplan.EventConflict: "refused",
		dnsplan.EventNewer: "newer", dnsplan.EventDeleted: "deleted", dnsplan.EventError: "error",
	}
	e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: cfg.Name, Retention: cfg.Retention, OnEvent: func(ev dnsplan.Event) {
		kind, ok := kinds[ev.Kind]
		if !ok {
			return
		}
		out := event{Kind: kind, Endpoint: ev.Endpoint, Gen: uint64(ev.Generation), Have: uint64(ev.Have)}
		if ev.Err != nil {
			out.Msg = ev.Err.Error()
		}
		em.emit(out)
	}})
	if err != nil {
		return err
	}
	em.emit(event{Kind: "ready"})
	var passGen fence.Token
	written := 0
	for ctx.Err() == nil {
		a := e.Next()
		switch a.Op {
		case dnsplan.OpRest:
			st := e.LastPass()
			em.emit(event{Kind: "pass_done", Gen: uint64(st.Generation), N: st.Applied + st.Repaired})
			e.Deliver(dnsplan.Result{})
			waitNewer(ctx, store, passGen)
			f.beforePass(ctx)
			passGen, written = 0, 0
			continue
		case dnsplan.OpApply:
			f.beforeWrite(ctx, a.Endpoint, a.Records.Generation, a.Expect.Generation)
		case dnsplan.OpListPlans:
			f.beforeCleanup(ctx, passGen)
		}
		c, cancel := context.WithTimeout(ctx, opTimeout)
		r := dnsplan.Execute(c, a, store, provider)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if a.Op == dnsplan.OpLoadLatest && passGen == 0 && r.Err == nil {
			passGen = r.Plan.Generation
		}
		e.Deliver(r)
		if a.Op == dnsplan.OpApply && r.Err == nil {
			written++
			f.afterWrite(ctx, a.Records.Generation, written)
		}
	}
	return nil
}
