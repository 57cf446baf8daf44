// Package chart draws the demos' line charts with gonum/plot: the naive run
// against the guarded one on one time axis, written as PNG and SVG.
package chart

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The colours of the lines: the naive run in reds, the guarded one in blues
// and greens; Other is for a run's second line on the same chart.
var (
	NaiveColor   = color.RGBA{R: 200, G: 40, B: 40, A: 255}
	NaiveOther   = color.RGBA{R: 240, G: 150, B: 60, A: 255}
	GuardedColor = color.RGBA{R: 30, G: 100, B: 200, A: 255}
	GuardedOther = color.RGBA{R: 60, G: 170, B: 120, A: 255}
)

// Points returns one point per element of ms, at (x(m), y(m)).
func Points[M any](ms []M, x, y func(M) float64) plotter.XYs {
	pts := make(plotter.XYs, len(ms))
	for i, m := range ms {
		pts[i] = plotter.XY{X: x(m), Y: y(m)}
	}
	return pts
}

// New returns a plot with the title and axis labels, the legend at the top,
// x ticks from ticks, and a grid.
func New(title, xlabel, ylabel string, ticks plot.Ticker) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.X.Tick.Marker = ticks
	p.Add(plotter.NewGrid())
	return p
}

// Line adds pts to p as a 1.2-point line of colour c, dashed if dash, and
// names it name in the legend.
func Line(p *plot.Plot, name string, c color.Color, dash bool, pts plotter.XYs) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(1.2)
	if dash {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// WriteGrid draws grid, rows of plots of equal length, aligned on one
// width by height canvas with padY between rows and a centimetre between
// columns, and writes it into dir as base.png and base.svg.
func WriteGrid(dir, base string, grid [][]*plot.Plot, width, height, padY vg.Length) error {
	if len(grid) == 0 || len(grid[0]) == 0 {
		return fmt.Errorf("chart: %s: no plots to draw", base)
	}
	for _, ext := range []string{"png", "svg"} {
		c, err := draw.NewFormattedCanvas(width, height, ext)
		if err != nil {
			return err
		}
		dc := draw.New(c)
		tiles := draw.Tiles{Rows: len(grid), Cols: len(grid[0]), PadX: vg.Centimeter, PadY: padY,
			PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
		canvases := plot.Align(grid, tiles, dc)
		for i := range grid {
			for j := range grid[i] {
				grid[i][j].Draw(canvases[i][j])
			}
		}
		f, err := os.Create(filepath.Join(dir, base+"."+ext))
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", f.Name(), err)
		}
	}
	return nil
}

// Series is one line of a chart: a point per element of Points, at height
// Y of it.
type Series[M any] struct {
	Name   string
	Color  color.Color
	Dash   bool
	Y      func(M) float64
	Points []M
}

// AddLines adds every series of ls to p with Line, its points at x of each
// element, and starts p's y axis at 0.
func AddLines[M any](p *plot.Plot, x func(M) float64, ls []Series[M]) error {
	for _, s := range ls {
		if err := Line(p, s.Name, s.Color, s.Dash, Points(s.Points, x, s.Y)); err != nil {
			return err
		}
	}
	p.Y.Min = 0
	return nil
}

// HourTicks returns x ticks every step hours from 0 to the end of the axis,
// labelled with label(h) of the whole hour h; an empty label leaves a tick
// unlabelled.
func HourTicks(step float64, label func(h int) string) plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ts []plot.Tick
		for h := 0.0; h <= hi; h += step {
			ts = append(ts, plot.Tick{Value: h, Label: label(int(h))})
		}
		return ts
	})
}
