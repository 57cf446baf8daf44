// Package twin runs a demo's naive and guarded simulations of one outage
// side by side, with progress on stderr (see package progress), and prints what they
// give: charts, one JSON object or a text report.
package twin

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/stormguard/stormguard/examples/internal/progress"
)

// FlagError reports err, returned by parsing the flags of the command name,
// on stderr and returns the exit status: 0 for flag.ErrHelp (the flag
// package has printed the usage), 2 for any other error.
func FlagError(name string, stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 2
}

// Demo is a command that compares a naive and a guarded run. R is one
// run's result.
type Demo[R any] struct {
	// Name starts every error message: "ebs2011".
	Name string
	// Charts names the charts in an error writing them: "chart", "charts".
	Charts string
	// Run runs simulation i, 0 naive and 1 guarded, calling progress with
	// the fraction of it done. Both runs go on at once.
	Run func(i int, progress func(done float64)) (R, error)
	// WriteCharts writes the charts of both runs into dir.
	WriteCharts func(dir string, naive, guarded R) error
	// WriteJSON prints both runs as one JSON object.
	WriteJSON func(w io.Writer, results [2]R) error
	// Report prints both runs as text.
	Report func(w io.Writer, results [2]R)
}

// Main runs both simulations; then, if out is not empty, writes the charts
// into out; then prints the JSON if asJSON is set, the text report if not.
// The progress bar goes to stderr (see package progress), with asJSON too.
// Main returns the exit status: 0, or 1 after reporting on stderr an error
// of a run, of the charts or of the JSON.
func (d Demo[R]) Main(stdout, stderr io.Writer, out string, asJSON bool) int {
	bar := progress.NewBar(stderr, true)
	var results [2]R
	var errs [2]error
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = d.Run(i, func(done float64) { bar.Update(i, done) })
		}()
	}
	wg.Wait()
	bar.Done()
	if err := errors.Join(errs[:]...); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", d.Name, err)
		return 1
	}
	if out != "" {
		if err := d.WriteCharts(out, results[0], results[1]); err != nil {
			fmt.Fprintf(stderr, "%s: %s: %v\n", d.Name, d.Charts, err)
			return 1
		}
	}
	if asJSON {
		if err := d.WriteJSON(stdout, results); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", d.Name, err)
			return 1
		}
		return 0
	}
	d.Report(stdout, results)
	return 0
}
