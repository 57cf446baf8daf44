// Package progress draws the demos' progress on stderr: a bar for runs that
// report the fraction done, and a ticking line for runs that report nothing
// but which phase they are in. On a terminal they redraw one line in place,
// once a run has taken After; on any other writer (a pipe, a file, a log)
// they print plain lines instead, once a run has taken LineAfter: the bar
// one at every tenth done, the ticker one every LineEvery. A short run
// therefore prints nothing, and a long one shows it is alive wherever its
// stderr goes.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	// After is how long a run goes before a progress line appears.
	After = 2 * time.Second
	// Refresh is how often a Ticker redraws its line.
	Refresh = 250 * time.Millisecond
	// LineAfter is how long a run goes before progress lines appear on a
	// writer that is not a terminal.
	LineAfter = 5 * time.Second
	// LineEvery is how often a Ticker prints a line on a writer that is
	// not a terminal.
	LineEvery = 10 * time.Second
)

// Terminal reports whether w is an *os.File open on a terminal (a
// character device).
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Bar draws "simulating [####    ]  50%" for two runs that go on at once,
// showing the mean of the fractions they reported. A nil *Bar does nothing.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool // draw on a terminal
	lines bool // print plain lines
	start time.Time
	frac  [2]float64
	drawn bool
	tenth int // the last tenth printed as a line
}

// NewBar returns a Bar that draws on w if want is true (in place on a
// terminal, as lines otherwise), and does nothing if want is false.
func NewBar(w io.Writer, want bool) *Bar {
	term := Terminal(w)
	return &Bar{w: w, on: want && term, lines: want && !term, start: time.Now()}
}

// Update records that run i (0 or 1; any other i is ignored) is done
// fraction of the way, and redraws the bar once After has passed. It may be
// called from several goroutines.
func (p *Bar) Update(i int, done float64) {
	if p == nil || !(p.on || p.lines) || i < 0 || i >= len(p.frac) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frac[i] = done
	f := (p.frac[0] + p.frac[1]) / 2
	if p.lines {
		if tenth := int(10 * f); tenth > p.tenth && time.Since(p.start) >= LineAfter {
			p.tenth = tenth
			fmt.Fprintf(p.w, "simulating: %d%% done after %.0fs\n", 10*tenth, time.Since(p.start).Seconds())
		}
		return
	}
	if time.Since(p.start) < After {
		return
	}
	const width = 40
	n := int(f * width)
	fmt.Fprintf(p.w, "\rsimulating [%s%s] %3.0f%%", strings.Repeat("#", n), strings.Repeat(" ", width-n), 100*f)
	p.drawn = true
}

// Done blanks the bar if it was drawn.
func (p *Bar) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 64))
	}
}

// Ticker draws, every Refresh once After has passed, label followed by the
// current phase and the seconds taken so far:
// "leasestorm: simulating the naive scheduler…   3s". A nil *Ticker does
// nothing.
type Ticker struct {
	mu    sync.Mutex
	w     io.Writer
	lines bool // print a plain line every LineEvery
	last  time.Time
	label string
	blank int
	start time.Time
	name  string
	drawn bool
	quit  chan struct{}
	done  chan struct{}
}

// StartTicker returns a Ticker that draws on w: in place on a terminal
// (Stop blanks blank columns of the line if it was drawn), as a plain line
// every LineEvery, from LineAfter on, on any other writer. A nil w gets
// nil, which does nothing.
func StartTicker(w io.Writer, label string, blank int) *Ticker {
	if w == nil {
		return nil
	}
	p := newTicker(w, label, blank)
	p.lines = !Terminal(w)
	go p.loop()
	return p
}

func newTicker(w io.Writer, label string, blank int) *Ticker {
	return &Ticker{w: w, label: label, blank: blank, start: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
}

func (p *Ticker) loop() {
	defer close(p.done)
	t := time.NewTicker(Refresh)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
			p.draw()
		}
	}
}

// Phase sets the phase the line names from the next redraw on.
func (p *Ticker) Phase(name string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.name = name
	p.mu.Unlock()
}

func (p *Ticker) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	el := now.Sub(p.start)
	if p.lines {
		if el >= LineAfter && now.Sub(p.last) >= LineEvery {
			p.last = now
			fmt.Fprintf(p.w, "%s%s… %.0fs\n", p.label, p.name, el.Seconds())
		}
		return
	}
	if el < After {
		return
	}
	fmt.Fprintf(p.w, "\r%s%s… %3.0fs ", p.label, p.name, el.Seconds())
	p.drawn = true
}

// Stop stops the redraws and blanks the line if it was drawn. It must be
// called once.
func (p *Ticker) Stop() {
	if p == nil {
		return
	}
	close(p.quit)
	<-p.done
	if p.drawn {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.blank))
	}
}
