package main

import (
	"fmt"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/stormguard/stormguard/examples/internal/chart"
	"github.com/stormguard/stormguard/examples/internal/ddbsim"
)

// series is one line of a chart: y per minute of a run.
type series = chart.Series[ddbsim.Minute]

func hours(m ddbsim.Minute) float64 { return float64(m.Minute) / 60 }

func newPlot(title, ylabel string) *plot.Plot {
	return chart.New(title, "PDT, October 19-20 2025", ylabel, chart.HourTicks(1, func(h int) string {
		if h%2 == 1 {
			return fmt.Sprintf("%02d:00", (23+h)%24)
		}
		return ""
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
			{Name: "naive DNS non-empty", Color: chart.NaiveOther, Dash: true, Y: f(func(m ddbsim.Minute) float64 { return 100 * float64(m.DNSNonEmpty) }), Points: n.Timeline},
			{Name: "naive DynamoDB success", Color: chart.NaiveColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.DynamoDBOKPct }), Points: n.Timeline},
			{Name: "guarded DNS non-empty", Color: chart.GuardedOther, Dash: true, Y: f(func(m ddbsim.Minute) float64 { return 100 * float64(m.DNSNonEmpty) }), Points: g.Timeline},
			{Name: "guarded DynamoDB success", Color: chart.GuardedColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.DynamoDBOKPct }), Points: g.Timeline},
		}, 105},
		{"DWFM: droplets leased", "% of droplets", []series{
			{Name: "naive", Color: chart.NaiveColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.LeasedPct }), Points: n.Timeline},
			{Name: "guarded", Color: chart.GuardedColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.LeasedPct }), Points: g.Timeline},
		}, 105},
		{"DWFM: attempts and timeouts (= re-queues) per minute", "per minute", []series{
			{Name: "naive attempts", Color: chart.NaiveOther, Dash: true, Y: f(func(m ddbsim.Minute) float64 { return float64(m.DWFMAttempts) }), Points: n.Timeline},
			{Name: "naive timeouts", Color: chart.NaiveColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return float64(m.DWFMTimeouts) }), Points: n.Timeline},
			{Name: "guarded attempts", Color: chart.GuardedOther, Dash: true, Y: f(func(m ddbsim.Minute) float64 { return float64(m.DWFMAttempts) }), Points: g.Timeline},
			{Name: "guarded timeouts", Color: chart.GuardedColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return float64(m.DWFMTimeouts) }), Points: g.Timeline},
		}, 0},
		{"EC2: launches that ran and got network state within 10 minutes", "% of requests", []series{
			{Name: "naive", Color: chart.NaiveColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.LaunchOKPct }), Points: n.Timeline},
			{Name: "guarded", Color: chart.GuardedColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.LaunchOKPct }), Points: g.Timeline},
		}, 105},
		{"Network Manager: propagation delay of fresh launches", "hours", []series{
			{Name: "naive p50", Color: chart.NaiveOther, Dash: true, Y: f(func(m ddbsim.Minute) float64 { return m.PropP50Seconds / 3600 }), Points: n.Timeline},
			{Name: "naive p99", Color: chart.NaiveColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.PropP99Seconds / 3600 }), Points: n.Timeline},
			{Name: "guarded p50", Color: chart.GuardedOther, Dash: true, Y: f(func(m ddbsim.Minute) float64 { return m.PropP50Seconds / 3600 }), Points: g.Timeline},
			{Name: "guarded p99", Color: chart.GuardedColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.PropP99Seconds / 3600 }), Points: g.Timeline},
		}, 0},
		{"NLB: capacity in service", "% of targets", []series{
			{Name: "naive", Color: chart.NaiveColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.NLBCapacityPct }), Points: n.Timeline},
			{Name: "guarded", Color: chart.GuardedColor, Dash: false, Y: f(func(m ddbsim.Minute) float64 { return m.NLBCapacityPct }), Points: g.Timeline},
		}, 105},
	}
	var out []*plot.Plot
	for _, s := range specs {
		p := newPlot(s.title, s.ylabel)
		if err := chart.AddLines(p, hours, s.lines); err != nil {
			return nil, err
		}
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
