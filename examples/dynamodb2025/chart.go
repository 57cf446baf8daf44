package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/stormguard/stormguard/examples/internal/ddbsim"
)

var (
	naiveColor   = color.RGBA{R: 200, G: 40, B: 40, A: 255}
	naiveOther   = color.RGBA{R: 240, G: 150, B: 60, A: 255}
	guardedColor = color.RGBA{R: 30, G: 100, B: 200, A: 255}
	guardedOther = color.RGBA{R: 60, G: 170, B: 120, A: 255}
)

type series struct {
	name  string
	color color.Color
	dash  bool
	y     func(m ddbsim.Minute) float64
	run   *ddbsim.Result
}

func line(p *plot.Plot, s series) error {
	pts := make(plotter.XYs, len(s.run.Timeline))
	for i, m := range s.run.Timeline {
		pts[i] = plotter.XY{X: float64(m.Minute) / 60, Y: s.y(m)}
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = s.color
	l.Width = vg.Points(1.2)
	if s.dash {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	}
	p.Add(l)
	p.Legend.Add(s.name, l)
	return nil
}

func newPlot(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "PDT, October 19-20 2025"
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.X.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ts []plot.Tick
		for h := 0.0; h <= hi; h++ {
			t := plot.Tick{Value: h}
			if int(h)%2 == 1 {
				t.Label = fmt.Sprintf("%02d:00", (23+int(h))%24)
			}
			ts = append(ts, t)
		}
		return ts
	})
	p.Add(plotter.NewGrid())
	return p
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
			{"naive DNS non-empty", naiveOther, true, f(func(m ddbsim.Minute) float64 { return 100 * float64(m.DNSNonEmpty) }), n},
			{"naive DynamoDB success", naiveColor, false, f(func(m ddbsim.Minute) float64 { return m.DynamoDBOKPct }), n},
			{"guarded DNS non-empty", guardedOther, true, f(func(m ddbsim.Minute) float64 { return 100 * float64(m.DNSNonEmpty) }), g},
			{"guarded DynamoDB success", guardedColor, false, f(func(m ddbsim.Minute) float64 { return m.DynamoDBOKPct }), g},
		}, 105},
		{"DWFM: droplets leased", "% of droplets", []series{
			{"naive", naiveColor, false, f(func(m ddbsim.Minute) float64 { return m.LeasedPct }), n},
			{"guarded", guardedColor, false, f(func(m ddbsim.Minute) float64 { return m.LeasedPct }), g},
		}, 105},
		{"DWFM: attempts and timeouts (= re-queues) per minute", "per minute", []series{
			{"naive attempts", naiveOther, true, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMAttempts) }), n},
			{"naive timeouts", naiveColor, false, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMTimeouts) }), n},
			{"guarded attempts", guardedOther, true, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMAttempts) }), g},
			{"guarded timeouts", guardedColor, false, f(func(m ddbsim.Minute) float64 { return float64(m.DWFMTimeouts) }), g},
		}, 0},
		{"EC2: launches that ran and got network state within 10 minutes", "% of requests", []series{
			{"naive", naiveColor, false, f(func(m ddbsim.Minute) float64 { return m.LaunchOKPct }), n},
			{"guarded", guardedColor, false, f(func(m ddbsim.Minute) float64 { return m.LaunchOKPct }), g},
		}, 105},
		{"Network Manager: propagation delay of fresh launches", "hours", []series{
			{"naive p50", naiveOther, true, f(func(m ddbsim.Minute) float64 { return m.PropP50Seconds / 3600 }), n},
			{"naive p99", naiveColor, false, f(func(m ddbsim.Minute) float64 { return m.PropP99Seconds / 3600 }), n},
			{"guarded p50", guardedOther, true, f(func(m ddbsim.Minute) float64 { return m.PropP50Seconds / 3600 }), g},
			{"guarded p99", guardedColor, false, f(func(m ddbsim.Minute) float64 { return m.PropP99Seconds / 3600 }), g},
		}, 0},
		{"NLB: capacity in service", "% of targets", []series{
			{"naive", naiveColor, false, f(func(m ddbsim.Minute) float64 { return m.NLBCapacityPct }), n},
			{"guarded", guardedColor, false, f(func(m ddbsim.Minute) float64 { return m.NLBCapacityPct }), g},
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
	for _, ext := range []string{"png", "svg"} {
		c, err := draw.NewFormattedCanvas(30*vg.Centimeter, 54*vg.Centimeter, ext)
		if err != nil {
			return err
		}
		dc := draw.New(c)
		tiles := draw.Tiles{Rows: len(ps), Cols: 1, PadX: vg.Centimeter, PadY: vg.Centimeter / 2,
			PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
		canvases := plot.Align(grid, tiles, dc)
		for i := range grid {
			grid[i][0].Draw(canvases[i][0])
		}
		f, err := os.Create(filepath.Join(dir, "dynamodb2025."+ext))
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
