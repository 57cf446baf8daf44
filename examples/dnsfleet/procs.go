package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// spawner starts every process of the run from one OS thread that lives
// as long as the program. The kernel sends a child its Pdeathsig when the
// thread that forked it exits, not only when the process does, and a Go
// thread exits when a goroutine locked to it ends without unlocking: a
// child forked from such a thread would be killed early. Forked from a
// thread of our own that never exits, every child is killed (SIGKILL)
// exactly when this process dies, even by SIGKILL, so no etcd, named or
// fleet member outlives it.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

var (
	spawnOnce sync.Once
	theSpawn  *spawner
)

func getSpawner() *spawner {
	spawnOnce.Do(func() {
		theSpawn = &spawner{reqs: make(chan spawnReq)}
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives until exit
			for r := range theSpawn.reqs {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	return theSpawn
}

// proc is one process the run started: a server or a fleet member. It is
// the leader of its own process group, so Ctrl-C on the terminal reaches
// only the parent, which stops the group itself.
type proc struct {
	name string
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed when the process has exited
}

// procs is every process the run started, so that all of them are
// stopped on every way out.
type procs struct {
	mu    sync.Mutex
	all   []*proc
	pidTo io.Writer // where "started <name> (pid N)" lines go
}

// start starts cmd as name, with Setpgid and Pdeathsig, and records it.
func (ps *procs) start(name string, cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	errc := make(chan error, 1)
	getSpawner().reqs <- spawnReq{cmd: cmd, errc: errc}
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	if ps.pidTo != nil {
		fmt.Fprintf(ps.pidTo, "dnsfleet: started %s (pid %d)\n", name, p.pid)
	}
	return p, nil
}

// running reports whether p has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to p and waits up to wait for it to exit; it reports
// whether it did. os.Process.Signal goes through a pidfd on Linux, so a
// PID the kernel has reused for another program since p exited is never
// signalled. (Every process the run starts is alone in its group: etcd,
// named -g and the fleet's members start no process of their own.)
func (p *proc) signal(sig syscall.Signal, wait time.Duration) bool {
	if !p.running() {
		return true
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(wait):
		return false
	}
}

// kill kills p with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill() error {
	if !p.signal(syscall.SIGKILL, 10*time.Second) {
		return fmt.Errorf("%s (pid %d) did not exit 10s after SIGKILL", p.name, p.pid)
	}
	return nil
}

// stop stops p with SIGTERM, then SIGKILL after five seconds.
func (p *proc) stop() error {
	if p.signal(syscall.SIGTERM, 5*time.Second) {
		return nil
	}
	return p.kill()
}

// stopAll stops every process still running, children before servers
// (the reverse of their start), and waits for each.
func (ps *procs) stopAll() error {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	// Fleet members first, all at once; then the servers.
	for _, servers := range []bool{false, true} {
		for i := len(all) - 1; i >= 0; i-- {
			p := all[i]
			if isServer(p.name) != servers {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.stop(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

func isServer(name string) bool { return name == "etcd" || name == "named" }

// logTail returns the last lines of a log file, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
