package twin

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFlagError(t *testing.T) {
	var errb bytes.Buffer
	assert.Equal(t, 0, FlagError("demo", &errb, flag.ErrHelp))
	assert.Empty(t, errb.String())
	assert.Equal(t, 2, FlagError("demo", &errb, errors.New("-n 0 is outside [1, 2]")))
	assert.Equal(t, "demo: -n 0 is outside [1, 2]\n", errb.String())
}

// demo returns a Demo whose runs give their index, or fail for i in bad,
// and which records what it was asked to write.
func demo(calls *[]string, bad ...int) Demo[int] {
	return Demo[int]{
		Name: "demo", Charts: "charts",
		Run: func(i int, progress func(float64)) (int, error) {
			progress(1)
			for _, b := range bad {
				if b == i {
					return 0, fmt.Errorf("run %d failed", i)
				}
			}
			return i, nil
		},
		WriteCharts: func(dir string, n, g int) error {
			*calls = append(*calls, fmt.Sprintf("charts %s %d %d", dir, n, g))
			if dir == "bad" {
				return errors.New("no room")
			}
			return nil
		},
		WriteJSON: func(w io.Writer, rs [2]int) error {
			_, err := fmt.Fprintf(w, "json %v", rs)
			return err
		},
		Report: func(w io.Writer, rs [2]int) { fmt.Fprintf(w, "report %v", rs) },
	}
}

func TestDemoMain(t *testing.T) {
	var calls []string
	var out, errb bytes.Buffer
	assert.Equal(t, 0, demo(&calls).Main(&out, &errb, "dir", false))
	assert.Equal(t, "report [0 1]", out.String())
	assert.Equal(t, []string{"charts dir 0 1"}, calls)
	assert.Empty(t, errb.String(), "no progress bar on a buffer")

	out.Reset()
	calls = nil
	assert.Equal(t, 0, demo(&calls).Main(&out, &errb, "", true))
	assert.Equal(t, "json [0 1]", out.String())
	assert.Empty(t, calls)

	out.Reset()
	assert.Equal(t, 1, demo(&calls, 0, 1).Main(&out, &errb, "dir", false))
	assert.Equal(t, "demo: run 0 failed\nrun 1 failed\n", errb.String())
	assert.Empty(t, out.String())
	assert.Empty(t, calls, "no charts of failed runs")

	errb.Reset()
	assert.Equal(t, 1, demo(&calls).Main(&out, &errb, "bad", false))
	assert.Equal(t, "demo: charts: no room\n", errb.String())
	assert.Empty(t, out.String())
}
