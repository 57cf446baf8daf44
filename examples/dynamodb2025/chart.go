package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/stormguard/stormguard/examples/internal/chart"
	"github.com/stormguard/stormguard/examples/internal/ddbsim"
)

type series struct {
	name  string
	color color.Color
	dash  bool
	y     func(m ddbsim.Minute) float64
	run   *ddbsim.Result
}

func line(p *plot.Plot, s series) error {
	x := func(m ddbsim.Minute) float64 { return float64(m.Minute) / 60 }
	return chart.Line(p, s.name, s.color, s.dash, chart.Points(s.run.Timeline, x, s.y))
}

func newPlot(title, ylabel string) *plot.Plot {
	return chart.New(title, "PDT, October 19-20 2025", ylabel, plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ts []plot.Tick
		for h := 0.0; h <= hi; h++ {
			t := plot.Tick{Value: h}
			if int(h)%2 == 1 {
				t.Label = fmt.Sprintf("%02d:00", (23+int(h))%24)
			}
			ts = append(ts, t)
		}
		return ts
	}))
}

// charts builds the six panels, naive against guarded on one time axis.
func charts(n, g *ddbsim.Result) ([]*plot.Plot, error) {
	f := func(get func(ddbsim.Minute) float64) func(ddbsim.Minute) float64 { return get }
	specs := []struct {
		title, ylabel string
		lines         []series
		ymax          float64
	}{
		{"DynamoDB: regional DNS answers (100 = non-empty) and clients' success", "%", []series{
			{"naive DNS non-empty", chart.NaiveOther, true, f(func(m ddbsim.Minute) float64 { return 100 * float64(m.DNSNonEmpty) }), n},
			{"naive DynamoDB success", chart.NaiveColor, false, f(func(m ddbsim.Minute) float64 { return m.DynamoDBOKPct }), n},
			{"guarded DNS non-empty", chart.GuardedOther, true, f(func(m ddbsim.Minute) float64 { return 100 * float64(m.DNSNonEmpty) }), g},
			{"guarded DynamoDB success", chart.GuardedColor, false, f(func(m ddbsim.Minute) float64 { return m.DynamoDBOKPct }), g},
		}, 105},
		{"DWFM: droplets leased", "% of droplets", []series{
			{"naive", chart.NaiveColor, false, f(func(m ddbsim.Minute) float64 { return m.LeasedPct }), n},
			{"guarded", chart.GuardedColor, false, f(func(m ddbsim.Minute) float64 { return m.LeasedPct }), g},
		}, 105},
		{"DWFM: attempts and timeouts (= re-queues) per minute", "per minute", []series{
			{"naive attempts", chart.NaiveOther, true, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMAttempts) }), n},
			{"naive timeouts", chart.NaiveColor, false, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMTimeouts) }), n},
			{"guarded attempts", chart.GuardedOther, true, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMAttempts) }), g},
			{"guarded timeouts", chart.GuardedColor, false, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMTimeouts) }), g},
		}, 0},
		{"EC2: launches that ran and got network state within 10 minutes", "% of requests", []series{
			{"naive", chart.NaiveColor, false, f(func(m ddbsim.Minute) float64 { return m.LaunchOKPct }), n},
			{"guarded", chart.GuardedColor, false, f(func(m ddbsim.Minute) float64 { return m.LaunchOKPct }), g},
		}, 105},
		{"Network Manager: propagation delay of fresh launches", "hours", []series{
			{"naive p50", chart.NaiveOther, true, f(func(m ddbsim.Minute) float64 { return m.PropP50Seconds / 3600 }), n},
			{"naive p99", chart.NaiveColor, false, f(func(m ddbsim.Minute) float64 { return m.PropP99Seconds / 3600 }), n},
			{"guarded p50", chart.GuardedOther, true, f(func(m ddbsim.Minute) float64 { return m.PropP50Seconds / 3600 }), g},
			{"guarded p99", chart.GuardedColor, false, f(func(m ddbsim.Minute) float64 { return m.PropP99Seconds / 3600 }), g},
		}, 0},
		{"NLB: capacity in service", "% of targets", []series{
			{"naive", chart.NaiveColor, false, f(func(m ddbsim.Minute) float64 { return m.NLBCapacityPct }), n},
			{"guarded", chart.GuardedColor, false, f(func(m ddbsim.Minute) float64 { return m.NLBCapacityPct }), g},
		}, 105},
	}
	var out []*plot.Plot
	for _, s := range specs {
		p := newPlot(s.title, s.ylabel)
		for _, l := range s.lines {
			if err := line(p, l); err != nil {
				return nil, err
			}
		}
		p.Y.Min = 0
		if s.ymax > 0 {
			p.Y.Max = s.ymax
			p.Legend.Top = false
		}
		out = append(out, p)
	}
	return out, nil
}

func chartFiles() []string { return []string{"dynamodb2025.png", "dynamodb2025.svg"} }

// writeCharts writes the six panels stacked, as dynamodb2025.png and .svg.
func writeCharts(dir string, n, g *ddbsim.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ps, err := charts(n, g)
	if err != nil {
		return err
	}
	grid := make([][]*plot.Plot, len(ps))
	for i, p := range ps {
		grid[i] = []*plot.Plot{p}
	}
	return chart.WriteGrid(dir, "dynamodb2025", grid, 30*vg.Centimeter, 54*vg.Centimeter, vg.Centimeter/2)
}
