package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func TestPoints(t *testing.T) {
	pts := Points([]int{1, 2, 3}, func(m int) float64 { return float64(m) / 2 }, func(m int) float64 { return float64(m * m) })
	assert.Equal(t, plotter.XYs{{X: 0.5, Y: 1}, {X: 1, Y: 4}, {X: 1.5, Y: 9}}, pts)
	assert.Empty(t, Points(nil, func(int) float64 { return 0 }, func(int) float64 { return 0 }))
}

func TestWriteGrid(t *testing.T) {
	p := New("title", "x", "y", plot.DefaultTicks{})
	assert.Equal(t, "title", p.Title.Text)
	assert.True(t, p.Legend.Top)
	require.NoError(t, Line(p, "naive", NaiveColor, false, plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 2}}))
	require.NoError(t, Line(p, "guarded", GuardedColor, true, plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}))
	assert.Error(t, Line(p, "nan", NaiveOther, false, plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: nanValue()}}), "a NaN point is refused")
	dir := t.TempDir()
	require.NoError(t, WriteGrid(dir, "c", [][]*plot.Plot{{p}}, 10*vg.Centimeter, 8*vg.Centimeter, vg.Centimeter))
	png, err := os.ReadFile(filepath.Join(dir, "c.png"))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG")))
	svg, err := os.ReadFile(filepath.Join(dir, "c.svg"))
	require.NoError(t, err)
	assert.Contains(t, string(svg), "<svg")
	assert.Error(t, WriteGrid(dir, "empty", nil, vg.Centimeter, vg.Centimeter, 0))
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func TestAddLines(t *testing.T) {
	p := New("t", "x", "y", plot.DefaultTicks{})
	p.Y.Min = -5
	ls := []Series[int]{
		{Name: "a", Color: NaiveColor, Y: func(m int) float64 { return float64(m) }, Points: []int{1, 2}},
		{Name: "b", Color: GuardedColor, Dash: true, Y: func(m int) float64 { return float64(2 * m) }, Points: []int{1, 2}},
	}
	require.NoError(t, AddLines(p, func(m int) float64 { return float64(m) }, ls))
	assert.Zero(t, p.Y.Min, "the y axis starts at 0")
	assert.Equal(t, 4.0, p.Y.Max)
	bad := []Series[int]{{Name: "nan", Y: func(int) float64 { return nanValue() }, Points: []int{1}}}
	assert.Error(t, AddLines(p, func(m int) float64 { return float64(m) }, bad))
}

func TestHourTicks(t *testing.T) {
	ticks := HourTicks(6, func(h int) string {
		if h%12 == 0 {
			return "L" + strconv.Itoa(h)
		}
		return ""
	}).Ticks(0, 13)
	assert.Equal(t, []plot.Tick{{Value: 0, Label: "L0"}, {Value: 6}, {Value: 12, Label: "L12"}}, ticks)
}
