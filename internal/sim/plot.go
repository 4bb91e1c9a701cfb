package sim

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot writes a PNG with one row per simulated policy: inflow (records/s,
// scaled to replicas' worth), replicas and time lag over time, with the
// SLO as a line, so a person can see where a policy falls behind and what
// it pays.
func Plot(file string, r Result) error {
	var names []string
	for _, p := range Policies {
		if _, ok := r.Series[p]; ok {
			names = append(names, p)
		}
	}
	const rows = 2
	img := vgimg.New(vg.Length(30*len(names))*vg.Centimeter/2+vg.Centimeter, 24*vg.Centimeter)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: len(names), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, len(names))
	}
	for c, name := range names {
		s := r.Series[name]
		inflow := make(plotter.XYs, len(s.Inflow))
		reps := make(plotter.XYs, len(s.Replicas))
		lag := make(plotter.XYs, len(s.LagSeconds))
		slo := plotter.XYs{{X: 0, Y: r.Config.SLO}, {X: float64(len(s.LagSeconds)), Y: r.Config.SLO}}
		for t := range s.Inflow {
			inflow[t] = plotter.XY{X: float64(t), Y: s.Inflow[t] / r.Config.Capacity}
			reps[t] = plotter.XY{X: float64(t), Y: float64(s.Replicas[t])}
			lag[t] = plotter.XY{X: float64(t), Y: s.LagSeconds[t]}
		}
		m := r.Metrics[name]
		top := plot.New()
		top.Title.Text = fmt.Sprintf("%s: %s (attainment %.3f, %d replica-s, %d scale events)", r.Workload.Name, name, m.SLOAttainment, m.ReplicaSeconds, m.ScaleEvents)
		top.X.Label.Text = "seconds"
		top.Y.Label.Text = "replicas / inflow in replicas' worth"
		if err := addLines(top, "inflow/capacity", inflow, color.RGBA{R: 120, G: 120, B: 120, A: 255}); err != nil {
			return err
		}
		if err := addLines(top, "replicas", reps, color.RGBA{B: 200, A: 255}); err != nil {
			return err
		}
		bottom := plot.New()
		bottom.X.Label.Text = "seconds"
		bottom.Y.Label.Text = "time lag (s)"
		if err := addLines(bottom, "time lag", lag, color.RGBA{R: 200, A: 255}); err != nil {
			return err
		}
		if err := addLines(bottom, "SLO", slo, color.RGBA{G: 150, A: 255}); err != nil {
			return err
		}
		plots[0][c], plots[1][c] = top, bottom
	}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		for j := range plots[i] {
			plots[i][j].Draw(canvases[i][j])
		}
	}
	w, err := createFile(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func addLines(p *plot.Plot, name string, xys plotter.XYs, c color.Color) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = c
	p.Add(l)
	p.Legend.Add(name, l)
	p.Legend.Top = true
	return nil
}
