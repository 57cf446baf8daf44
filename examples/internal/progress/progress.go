// Package progress draws the demos' progress lines on a terminal: a bar for
// runs that report the fraction done, and a ticking line for runs that
// report nothing but which phase they are in. Neither draws anything until
// a run has taken After, and neither draws on a writer that is not a
// terminal, so piped output and tests see nothing.
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
	on    bool
	start time.Time
	frac  [2]float64
	drawn bool
}

// NewBar returns a Bar that draws on w if want is true and w is a terminal,
// and does nothing otherwise.
func NewBar(w io.Writer, want bool) *Bar {
	return &Bar{w: w, on: want && Terminal(w), start: time.Now()}
}

// Update records that run i (0 or 1; any other i is ignored) is done
// fraction of the way, and redraws the bar once After has passed. It may be
// called from several goroutines.
func (p *Bar) Update(i int, done float64) {
	if p == nil || !p.on || i < 0 || i >= len(p.frac) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frac[i] = done
	if time.Since(p.start) < After {
		return
	}
	const width = 40
	f := (p.frac[0] + p.frac[1]) / 2
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
	label string
	blank int
	start time.Time
	name  string
	drawn bool
	quit  chan struct{}
	done  chan struct{}
}

// StartTicker returns a Ticker that draws on w if w is a terminal, and nil
// otherwise. Stop blanks blank columns of the line if it was drawn.
func StartTicker(w io.Writer, label string, blank int) *Ticker {
	if !Terminal(w) {
		return nil
	}
	p := newTicker(w, label, blank)
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
	el := time.Since(p.start)
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
