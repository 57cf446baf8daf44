package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/stormguard/stormguard/examples/internal/chart"
)

// zoneColors: the sick zone in red, the healthy ones in blue and green.
var zoneColors = []color.Color{chart.NaiveColor, chart.GuardedColor, chart.GuardedOther}

// point is one zone's numbers in one second, at the middle of the second.
type point struct {
	t float64
	secStat
}

func seriesOf(d *designRun, zone int, keep func(secStat) bool) []point {
	var out []point
	for s, sec := range d.secs {
		if keep(sec[zone]) {
			out = append(out, point{float64(s) + 0.5, sec[zone]})
		}
	}
	return out
}

// eventLines marks the sick zone's events on p as thin grey vertical lines
// (dashed for the operator's, solid for the backend's), from y 0 to top.
func eventLines(p *plot.Plot, d *designRun, top float64) error {
	for _, e := range d.run.events {
		l, err := plotter.NewLine(plotter.XYs{{X: e.at.Seconds(), Y: 0}, {X: e.at.Seconds(), Y: top}})
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 120}
		l.Width = vg.Points(0.8)
		if e.what == evPaused || e.what == evResumed {
			l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		}
		p.Add(l)
	}
	return nil
}

// charts builds a column of three charts per design: success, p99 latency
// and backend calls in flight, per zone and second.
func charts(cfg config, runs []*designRun) ([][]*plot.Plot, error) {
	maxLat, maxFly := 1.0, 1.0
	for _, d := range runs {
		for _, sec := range d.secs {
			for _, z := range sec {
				maxLat = max(maxLat, ms(z.p99))
				maxFly = max(maxFly, float64(z.inFlight))
			}
		}
	}
	grid := make([][]*plot.Plot, 3)
	for _, d := range runs {
		title := d.short + " (events: sick, paused, recovered, resumed)"
		specs := []struct {
			title, ylabel string
			y             func(point) float64
			top           float64
			all           bool // also seconds without requests
		}{
			{"success per zone, " + title, "% of requests sent in the second", func(p point) float64 { return 100 * p.success() }, 105, false},
			{"p99 latency per zone, " + d.short, "ms", func(p point) float64 { return ms(p.p99) }, maxLat * 1.05, false},
			{"backend calls in flight per zone, " + d.short, "most in the second", func(p point) float64 { return float64(p.inFlight) }, maxFly * 1.05, true},
		}
		for row, s := range specs {
			p := chart.New(s.title, "seconds into the run", s.ylabel, plot.DefaultTicks{})
			var lines []chart.Series[point]
			for z := range zones {
				lines = append(lines, chart.Series[point]{
					Name: fmt.Sprintf("%s (%s)", zones[z], role(z)), Color: zoneColors[z], Dash: z == 2, Y: s.y,
					Points: seriesOf(d, z, func(st secStat) bool { return s.all || st.n > 0 }),
				})
			}
			if err := chart.AddLines(p, func(p point) float64 { return p.t }, lines); err != nil {
				return nil, err
			}
			if err := eventLines(p, d, s.top); err != nil {
				return nil, err
			}
			p.X.Min, p.X.Max = 0, cfg.duration.Seconds()
			p.Y.Max = s.top
			grid[row] = append(grid[row], p)
		}
	}
	return grid, nil
}

// writeCharts writes the charts into dir as azisolation.png and .svg.
func writeCharts(dir string, cfg config, runs []*designRun) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	grid, err := charts(cfg, runs)
	if err != nil {
		return err
	}
	return chart.WriteGrid(dir, "azisolation", grid, 36*vg.Centimeter, 30*vg.Centimeter, vg.Centimeter)
}
