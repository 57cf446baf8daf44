package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// fleet is one run: etcd, BIND, the planner, enactors A, B and C, and the
// prober, in one mode.
type fleet struct {
	cfg     config
	mode    string
	dir     string
	ps      *procs
	etcd    *etcdServer
	bind    *bindServer
	members map[string]*member
	prober  *prober
	start   time.Time
	status  func(string) // progress on stderr

	mu      sync.Mutex
	evs     []event
	changed chan struct{}
	// died is the first member that exited without being told to, with
	// the end of its log; every wait then fails with it.
	died     error
	stopping bool // the run is over: members exit because they are told to

	// damagedGen is the generation the operator's damage was made at,
	// and damagedMark the events before it.
	damagedGen  uint64
	damagedMark int
}

// member is a process of the fleet: the same binary, re-executed with a
// role.
type member struct {
	cfg    childConfig
	p      *proc
	stdin  io.WriteCloser
	killed bool           // by the fault schedule; under fleet.mu
	wg     sync.WaitGroup // the reader of its stdout
}

func (f *fleet) record(ev event) {
	if ev.T == 0 {
		ev.T = time.Now().UnixNano()
	}
	f.mu.Lock()
	f.evs = append(f.evs, ev)
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	f.mu.Unlock()
}

// mark returns the number of events recorded so far: waitFor from it sees
// only later events.
func (f *fleet) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.evs)
}

// stepTimeout bounds the wait for any one step of the fault schedule:
// 30 seconds, and twice the time the planner takes to move on by
// -retention plus two generations (B's clean-up waits for that many).
func (f *fleet) stepTimeout() time.Duration {
	return 30*time.Second + 2*time.Duration(f.cfg.retention+2)*f.cfg.planEvery
}

// waitFor returns the first event from index since on that match says,
// or an error after stepTimeout naming what.
func (f *fleet) waitFor(ctx context.Context, since int, what string, match func(event) bool) (event, error) {
	stepTimeout := f.stepTimeout()
	deadline := time.NewTimer(stepTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		if f.died != nil {
			err := f.died
			f.mu.Unlock()
			return event{}, fmt.Errorf("%s mode, waiting for %s: %w", f.mode, what, err)
		}
		for ; since < len(f.evs); since++ {
			if match(f.evs[since]) {
				ev := f.evs[since]
				f.mu.Unlock()
				return ev, nil
			}
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return event{}, ctx.Err()
		case <-deadline.C:
			return event{}, fmt.Errorf("%s mode: waited %v for %s", f.mode, stepTimeout, what)
		case <-ch:
		}
	}
}

func is(who, kind string) func(event) bool {
	return func(ev event) bool { return ev.Who == who && ev.Kind == kind }
}

// startMember starts (or restarts) the member name.
func (f *fleet) startMember(name string) error {
	m := f.members[name]
	self, err := os.Executable()
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(m.cfg)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	logFile, err := os.OpenFile(filepath.Join(f.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	p, err := f.ps.start(name, cmd)
	if err != nil {
		return err
	}
	m.p, m.stdin, m.killed = p, stdin, false
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Who == name {
				f.record(ev)
			}
		}
		<-p.done
		f.mu.Lock()
		if !f.stopping && !m.killed && f.died == nil {
			f.died = fmt.Errorf("%s (pid %d) exited, not stopped by the run (%v); its log ends:\n%s",
				name, p.pid, p.cmd.ProcessState, logTail(filepath.Join(f.dir, name+".log"), 20))
		}
		f.mu.Unlock()
		f.record(event{Who: "fleet", Kind: "exited", Msg: name})
	}()
	f.record(event{Who: "fleet", Kind: "started", Msg: name, N: p.pid})
	return nil
}

// send gives member name a command.
func (f *fleet) send(name, cmd string) {
	if m := f.members[name]; m.stdin != nil {
		fmt.Fprintln(m.stdin, cmd)
	}
}

// killMember kills member name with SIGKILL and waits for it.
func (f *fleet) killMember(name, why string) error {
	m := f.members[name]
	f.mu.Lock()
	m.killed = true
	f.mu.Unlock()
	if err := m.p.kill(); err != nil {
		return err
	}
	m.wg.Wait()
	m.stdin.Close()
	f.record(event{Who: "fleet", Kind: "killed", Msg: name, Endpoint: why, N: m.p.pid})
	return nil
}

// run starts everything, injects every fault, lets the run go on until
// cfg.seconds, and stops everything; the caller stops what is left on
// every other way out (f.ps.stopAll).
func (f *fleet) run(ctx context.Context) error {
	etcdBin, err := binary("ETCD_BIN", "etcd", etcdFallback, "etcd-server")
	if err != nil {
		return err
	}
	namedBin, err := binary("NAMED_BIN", "named", namedFallback, "bind9")
	if err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	f.etcd = &etcdServer{bin: etcdBin, dir: f.dir,
		clientURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]), peerURL: "http://127.0.0.1:" + strconv.Itoa(ports[1])}
	f.status("starting etcd")
	if err := f.etcd.start(ctx, f.ps); err != nil {
		return err
	}
	f.record(event{Who: "fleet", Kind: "etcd_up", N: f.etcd.p.pid})
	if f.bind, err = newBind(namedBin, f.dir, ports[2]); err != nil {
		return err
	}
	f.status("starting named")
	if err := f.bind.start(ctx, f.ps); err != nil {
		return err
	}
	f.record(event{Who: "fleet", Kind: "named_up", N: f.bind.p.pid})
	base := childConfig{Mode: f.mode, Etcd: f.etcd.clientURL, DNS: f.bind.addr, Secret: f.bind.secret,
		Retention: f.cfg.retention, PlanEvery: f.cfg.planEvery}
	f.members = map[string]*member{}
	for _, name := range []string{"planner", "A", "B", "C"} {
		c := base
		c.Name, c.Role = name, "enactor"
		if name == "planner" {
			c.Role = "planner"
		}
		f.members[name] = &member{cfg: c}
	}
	f.status("starting the planner and enactors A, B, C")
	for _, name := range []string{"planner", "A", "B", "C"} {
		if err := f.startMember(name); err != nil {
			return err
		}
	}
	// The prober counts from the moment every enactor has applied a plan
	// to the regional endpoint: before that it has no records to serve.
	for _, name := range []string{"A", "B", "C"} {
		if _, err := f.waitFor(ctx, 0, "enactor "+name+"'s first pass", func(ev event) bool {
			return ev.Who == name && ev.Kind == "pass_done" && ev.Gen > 0
		}); err != nil {
			return err
		}
	}
	f.prober = newProber(f.bind.addr, f.cfg.qps, f.start)
	f.prober.run()
	f.record(event{Who: "fleet", Kind: "prober_started"})
	if err := f.faults(ctx); err != nil {
		return err
	}
	// The rest of the run: at least -seconds from the start, and two
	// seconds after the last fault.
	end := max(time.Until(f.start.Add(time.Duration(f.cfg.seconds)*time.Second)), 2*time.Second)
	f.status(fmt.Sprintf("all faults injected; running %.0fs more", end.Seconds()))
	deadline := time.Now().Add(end)
	for left := end; left > 0; left = time.Until(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, 10*time.Second)):
		}
		f.mu.Lock()
		died := f.died
		f.mu.Unlock()
		if died != nil {
			return died
		}
		if left > 10*time.Second {
			f.status(fmt.Sprintf("running, %.0fs to go", time.Until(deadline).Seconds()))
		}
	}
	f.prober.stop()
	f.record(event{Who: "fleet", Kind: "end"})
	return nil
}

// faults injects, in order: enactor C killed mid-pass; A stalled between
// reading and writing while B applies newer plans, B's clean-up starting
// as A's write lands; C restarted; the planner killed and restarted; etcd
// stopped and started again.
func (f *fleet) faults(ctx context.Context) error {
	pause := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := pause(time.Second); err != nil {
		return err
	}
	// C is killed mid-pass: it pauses after its first write of a pass.
	f.status("killing enactor C mid-pass")
	at := f.mark()
	f.send("C", "pause-midpass")
	if _, err := f.waitFor(ctx, at, "C mid-pass", is("C", "paused_midpass")); err != nil {
		return err
	}
	if err := f.killMember("C", "mid-pass"); err != nil {
		return err
	}
	// A stalls between reading and writing: B is held between passes
	// meanwhile, so that A's next pass is ahead of everyone.
	f.status("stalling enactor A")
	at = f.mark()
	f.send("B", "hold")
	if _, err := f.waitFor(ctx, at, "B held", is("B", "held")); err != nil {
		return err
	}
	at = f.mark()
	f.send("A", "stall")
	stalled, err := f.waitFor(ctx, at, "A stalled", is("A", "stalled"))
	if err != nil {
		return err
	}
	// B applies newer plans and pauses before the first clean-up that
	// deletes A's plan (more than -retention generations newer).
	at = f.mark()
	f.send("B", fmt.Sprintf("pause-cleanup %d", stalled.Gen+uint64(f.cfg.retention)+1))
	f.send("B", "release")
	// A 2025 enactor may also find the regional endpoint's live plan gone
	// before: a pass that lagged by more than -retention generations on
	// a loaded machine does what A's stall does. Then B stops there and
	// never reaches its clean-up, and A's write stops there too; the
	// schedule goes on.
	paused, err := f.waitFor(ctx, at, "B's clean-up", func(ev event) bool {
		return ev.Who == "B" && (ev.Kind == "paused_cleanup" || ev.Kind == "stuck")
	})
	if err != nil {
		return err
	}
	// A's write lands, then B's clean-up runs. A is held after that
	// pass until B's clean-up is done: its next pass would otherwise
	// race B's clean-up, and with plans coming fast enough, rewrite the
	// endpoint with the newest plan before B deletes the one A put there.
	at = f.mark()
	f.record(event{Who: "fleet", Kind: "resume", Msg: "A", Gen: stalled.Gen, Have: paused.Gen})
	f.send("A", "hold")
	f.send("A", "resume")
	if _, err := f.waitFor(ctx, at, "A's pass after the stall", func(ev event) bool {
		return ev.Who == "A" && (ev.Kind == "pass_done" || ev.Kind == "stuck")
	}); err != nil {
		return err
	}
	if paused.Kind == "paused_cleanup" {
		at = f.mark()
		f.send("B", "go-cleanup")
		if _, err := f.waitFor(ctx, at, "B's clean-up", is("B", "pass_done")); err != nil {
			return err
		}
	}
	f.send("A", "release")
	f.status("restarting enactor C")
	at = f.mark()
	if err := f.startMember("C"); err != nil {
		return err
	}
	f.record(event{Who: "fleet", Kind: "restarted", Msg: "C"})
	if _, err := f.waitFor(ctx, at, "C ready", is("C", "ready")); err != nil {
		return err
	}
	if err := pause(time.Second); err != nil {
		return err
	}
	// The planner is killed and restarted.
	f.status("killing the planner")
	if err := f.killMember("planner", ""); err != nil {
		return err
	}
	if f.mode == "dnsplan" {
		// While no newer plan comes, an operator damages the regional
		// endpoint by hand: the enactors' next pass finds it differing
		// from the plan of its generation and repairs it.
		if err := f.damage(ctx); err != nil {
			return err
		}
	}
	if err := pause(f.cfg.down); err != nil {
		return err
	}
	if f.mode == "dnsplan" {
		if err := f.waitRepaired(ctx); err != nil {
			return err
		}
	}
	at = f.mark()
	if err := f.startMember("planner"); err != nil {
		return err
	}
	f.record(event{Who: "fleet", Kind: "restarted", Msg: "planner"})
	if _, err := f.waitFor(ctx, at, "a plan from the restarted planner", is("planner", "published")); err != nil {
		return err
	}
	if err := pause(time.Second); err != nil {
		return err
	}
	// etcd is stopped and started again on the same data and ports.
	f.status("stopping etcd")
	if err := f.etcd.p.stop(); err != nil {
		return err
	}
	f.record(event{Who: "fleet", Kind: "etcd_down", N: f.etcd.p.pid})
	if err := pause(f.cfg.down); err != nil {
		return err
	}
	f.status("starting etcd again")
	at = f.mark()
	if err := f.etcd.start(ctx, f.ps); err != nil {
		return err
	}
	f.record(event{Who: "fleet", Kind: "etcd_up", N: f.etcd.p.pid})
	if _, err := f.waitFor(ctx, at, "a plan published after etcd is back", is("planner", "published")); err != nil {
		return err
	}
	return nil
}

// damage makes the operator's mistake (damageRegional), trying again if
// an enactor's write lands between its read and its update.
func (f *fleet) damage(ctx context.Context) error {
	for try := 1; ; try++ {
		at := f.mark()
		c, cancel := context.WithTimeout(ctx, opTimeout)
		gen, err := damageRegional(c, f.bind.addr, f.bind.secret)
		cancel()
		if err == nil {
			f.record(event{Who: "operator", Kind: "damaged", Endpoint: regional, Gen: gen, Msg: strayAddr})
			f.damagedGen, f.damagedMark = gen, at
			return nil
		}
		if try >= 5 || ctx.Err() != nil {
			return fmt.Errorf("operator's damage: %w", err)
		}
	}
}

// waitRepaired waits until an enactor repairs the operator's damage. A
// plan published before the planner was killed and applied after the
// damage overwrites it, which is no repair: then the damage is made
// again, up to five times.
func (f *fleet) waitRepaired(ctx context.Context) error {
	for try := 1; ; try++ {
		gen := f.damagedGen
		ev, err := f.waitFor(ctx, f.damagedMark, "the repair of the operator's damage", func(ev event) bool {
			return ev.Endpoint == regional && (ev.Kind == "repaired" && ev.Gen == gen || ev.Kind == "applied" && ev.Gen > gen)
		})
		if err != nil {
			return err
		}
		if ev.Kind == "repaired" {
			return nil
		}
		if try >= 5 {
			return fmt.Errorf("%s mode: the operator's damage was overwritten by a newer plan %d times, with the planner down", f.mode, try)
		}
		if err := f.damage(ctx); err != nil {
			return err
		}
	}
}
