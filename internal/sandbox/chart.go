package sandbox

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours of the demo chart's series.
var (
	inflowColor   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	lagColor      = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	replicasColor = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	targetColor   = color.RGBA{R: 120, G: 120, B: 120, A: 255}
	burstColor    = color.RGBA{R: 255, G: 236, B: 200, A: 255}
)

// WriteChart draws the demo as a PNG: inflow, time lag against the target
// line, and replicas over time, one panel each, with the burst shaded. It
// renders with gonum/plot, as the simulator's charts (internal/sim) do.
func WriteChart(path string, r *DemoResult) error {
	inflow := make(plotter.XYs, len(r.Samples))
	lag := make(plotter.XYs, len(r.Samples))
	replicas := make(plotter.XYs, len(r.Samples))
	tMax := 1.0
	for i, s := range r.Samples {
		t := s.At.Seconds()
		tMax = max(tMax, t)
		inflow[i] = plotter.XY{X: t, Y: s.Inflow}
		lag[i] = plotter.XY{X: t, Y: s.LagSeconds}
		replicas[i] = plotter.XY{X: t, Y: float64(s.Replicas)}
	}
	target := float64(r.MaxLagSeconds)

	panels := []struct {
		title string
		ylab  string
		data  plotter.XYs
		col   color.Color
		step  bool    // replicas change in steps, not along slopes
		ref   float64 // a target line, when positive
	}{
		{"Inflow", "records/s", inflow, inflowColor, false, 0},
		{"Time lag", "seconds", lag, lagColor, false, target},
		{"Replicas", "replicas", replicas, replicasColor, true, 0},
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.Y.Label.Text = pn.ylab
		if i == len(panels)-1 {
			p.X.Label.Text = "time since the load started (s)"
		}
		p.X.Min, p.X.Max = 0, tMax
		yMax := max(pn.ref, 1)
		for _, xy := range pn.data {
			yMax = max(yMax, xy.Y)
		}
		p.Y.Min, p.Y.Max = 0, yMax*1.1
		p.Add(plotter.NewGrid())

		// The burst, shaded behind the series.
		if r.BurstEnd > r.BurstStart {
			b0, b1 := r.BurstStart.Seconds(), r.BurstEnd.Seconds()
			burst, err := plotter.NewPolygon(plotter.XYs{{X: b0, Y: 0}, {X: b1, Y: 0}, {X: b1, Y: p.Y.Max}, {X: b0, Y: p.Y.Max}})
			if err != nil {
				return err
			}
			burst.Color = burstColor
			burst.Width = 0
			p.Add(burst)
			if i == 0 {
				p.Legend.Add("burst", burst)
			}
		}
		if len(pn.data) > 0 {
			l, err := plotter.NewLine(pn.data)
			if err != nil {
				return fmt.Errorf("chart %s: %w", pn.title, err)
			}
			l.Color = pn.col
			l.Width = vg.Points(1.5)
			if pn.step {
				l.StepStyle = plotter.PostStep
			}
			p.Add(l)
			p.Legend.Add(pn.ylab, l)
		}
		if pn.ref > 0 {
			ref, err := plotter.NewLine(plotter.XYs{{X: 0, Y: pn.ref}, {X: tMax, Y: pn.ref}})
			if err != nil {
				return err
			}
			ref.Color = targetColor
			ref.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(ref)
			p.Legend.Add(fmt.Sprintf("target %gs", pn.ref), ref)
		}
		p.Legend.Top = true
		plots[i] = []*plot.Plot{p}
	}

	img := vgimg.New(24*vg.Centimeter, 20*vg.Centimeter)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(plots, tiles, draw.New(img))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
