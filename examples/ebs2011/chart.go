package main

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/stormguard/stormguard/examples/internal/chart"
	"github.com/stormguard/stormguard/examples/internal/ebssim"
)

// series is one line of a chart: y per minute of a run.
type series = chart.Series[ebssim.Minute]

func hours(m ebssim.Minute) float64 { return float64(m.Minute) / 60 }

func newPlot(title, ylabel string) *plot.Plot {
	return chart.New(title, "PDT, 2011", ylabel, chart.HourTicks(6, func(h int) string {
		if h%12 == 0 {
			return fmt.Sprintf("Apr %d %02d:00", 21+h/24, h%24)
		}
		return ""
	}))
}

// tenMinuteSuccess is the success of the calls of zones zs over the ten
// minutes up to m's, for a smoother API chart.
func tenMinuteSuccess(r *ebssim.Result, zs ...int) func(ebssim.Minute) float64 {
	return func(m ebssim.Minute) float64 {
		i := m.Minute - 1
		var calls, ok int64
		for j := max(0, i-9); j <= i && j < len(r.Timeline); j++ {
			for _, z := range zs {
				calls += r.Timeline[j].APICalls[z]
				ok += r.Timeline[j].APIOK[z]
			}
		}
		if calls == 0 {
			return 100
		}
		return 100 * float64(ok) / float64(calls)
	}
}

// charts builds the four charts, naive against guarded on the same axes.
func charts(n, g *ebssim.Result) (map[string]*plot.Plot, error) {
	other := func(m ebssim.Minute) float64 { return (m.StuckPct[1] + m.StuckPct[2]) / 2 }
	affected := func(m ebssim.Minute) float64 { return m.StuckPct[0] }
	out := map[string]*plot.Plot{}
	specs := []struct {
		file, title, ylabel string
		lines               []series
	}{
		{"stuck", "Stuck volumes per zone", "% of the zone's volumes", []series{
			{Name: "naive us-east-1a", Color: chart.NaiveColor, Dash: false, Y: affected, Points: n.Timeline},
			{Name: "naive us-east-1b/c", Color: chart.NaiveOther, Dash: true, Y: other, Points: n.Timeline},
			{Name: "guarded us-east-1a", Color: chart.GuardedColor, Dash: false, Y: affected, Points: g.Timeline},
			{Name: "guarded us-east-1b/c", Color: chart.GuardedOther, Dash: true, Y: other, Points: g.Timeline},
		}},
		{"api", "Control-plane API success per zone (10-minute windows)", "% of API calls that succeeded", []series{
			{Name: "naive, from us-east-1a", Color: chart.NaiveColor, Dash: false, Y: tenMinuteSuccess(n, 0), Points: n.Timeline},
			{Name: "naive, from us-east-1b/c", Color: chart.NaiveOther, Dash: true, Y: tenMinuteSuccess(n, 1, 2), Points: n.Timeline},
			{Name: "guarded, from us-east-1a", Color: chart.GuardedColor, Dash: false, Y: tenMinuteSuccess(g, 0), Points: g.Timeline},
			{Name: "guarded, from us-east-1b/c", Color: chart.GuardedOther, Dash: true, Y: tenMinuteSuccess(g, 1, 2), Points: g.Timeline},
		}},
		{"free", "Free capacity of the affected cluster (usable nodes)", "% of its capacity", []series{
			{Name: "naive us-east-1a", Color: chart.NaiveColor, Dash: false, Y: func(m ebssim.Minute) float64 { return m.FreeAffectedPct }, Points: n.Timeline},
			{Name: "guarded us-east-1a", Color: chart.GuardedColor, Dash: false, Y: func(m ebssim.Minute) float64 { return m.FreeAffectedPct }, Points: g.Timeline},
		}},
		{"searches", "Search messages per minute (all zones)", "messages", []series{
			{Name: "naive", Color: chart.NaiveColor, Dash: false, Y: func(m ebssim.Minute) float64 { return float64(m.SearchMessages) }, Points: n.Timeline},
			{Name: "guarded", Color: chart.GuardedColor, Dash: false, Y: func(m ebssim.Minute) float64 { return float64(m.SearchMessages) }, Points: g.Timeline},
		}},
	}
	for _, s := range specs {
		p := newPlot(s.title, s.ylabel)
		if err := chart.AddLines(p, hours, s.lines); err != nil {
			return nil, err
		}
		out[s.file] = p
	}
	out["api"].Y.Max = 105
	out["api"].Legend.Top = false
	out["api"].Legend.YOffs = vg.Centimeter
	return out, nil
}

// chartFiles lists the files writeCharts writes into its directory.
func chartFiles() []string {
	var out []string
	for _, base := range []string{"ebs2011", "ebs2011-stuck", "ebs2011-api", "ebs2011-free", "ebs2011-searches"} {
		out = append(out, base+".png", base+".svg")
	}
	return out
}

// writeCharts writes every chart as PNG and SVG into dir, and the four
// together as ebs2011.png and ebs2011.svg.
func writeCharts(dir string, n, g *ebssim.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ps, err := charts(n, g)
	if err != nil {
		return err
	}
	for name, p := range ps {
		for _, ext := range []string{".png", ".svg"} {
			if err := p.Save(20*vg.Centimeter, 11*vg.Centimeter, filepath.Join(dir, "ebs2011-"+name+ext)); err != nil {
				return err
			}
		}
	}
	grid := [][]*plot.Plot{{ps["stuck"], ps["api"]}, {ps["free"], ps["searches"]}}
	return chart.WriteGrid(dir, "ebs2011", grid, 36*vg.Centimeter, 22*vg.Centimeter, vg.Centimeter)
}
