package sandbox

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"time"
)

// WriteChart draws the demo as a PNG: inflow, time lag and replicas over
// time, one panel each, with the burst shaded. It uses only the standard
// library (a 3x5 pixel font for the labels).
func WriteChart(path string, r *DemoResult) error {
	const (
		w, panelH, margin, left = 960, 180, 28, 70
	)
	h := margin + 3*(panelH+margin)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	if len(r.Samples) == 0 {
		return writePNG(path, img)
	}
	tMax := r.Samples[len(r.Samples)-1].At.Seconds()
	if tMax <= 0 {
		tMax = 1
	}
	x := func(t time.Duration) int { return left + int(t.Seconds()/tMax*float64(w-left-20)) }
	panels := []struct {
		title string
		col   color.RGBA
		val   func(Sample) float64
		ref   float64
	}{
		{"INFLOW RECORDS/S", color.RGBA{31, 119, 180, 255}, func(s Sample) float64 { return s.Inflow }, -1},
		{"TIME LAG S", color.RGBA{214, 39, 40, 255}, func(s Sample) float64 { return s.LagSeconds }, float64(r.MaxLagSeconds)},
		{"REPLICAS     TIME IN SECONDS BELOW", color.RGBA{44, 160, 44, 255}, func(s Sample) float64 { return float64(s.Replicas) }, -1},
	}
	for i, p := range panels {
		top := margin + i*(panelH+margin)
		bottom := top + panelH
		// The burst, shaded.
		fill(img, image.Rect(x(r.BurstStart), top, x(r.BurstEnd), bottom), color.RGBA{255, 236, 200, 255})
		vMax := 0.0
		for _, s := range r.Samples {
			vMax = math.Max(vMax, p.val(s))
		}
		vMax = math.Max(vMax, p.ref)
		vMax = niceCeil(vMax)
		y := func(v float64) int { return bottom - int(v/vMax*float64(panelH-4)) }
		// Axes and grid.
		grey := color.RGBA{200, 200, 200, 255}
		for g := 0; g <= 4; g++ {
			gy := y(vMax * float64(g) / 4)
			hline(img, left, w-20, gy, grey)
			text(img, left-6-textWidth(fmtNum(vMax*float64(g)/4)), gy-2, fmtNum(vMax*float64(g)/4), color.RGBA{80, 80, 80, 255})
		}
		vline(img, left, top, bottom, color.RGBA{0, 0, 0, 255})
		hline(img, left, w-20, bottom, color.RGBA{0, 0, 0, 255})
		if p.ref > 0 {
			for xx := left; xx < w-20; xx += 6 {
				hline(img, xx, xx+3, y(p.ref), color.RGBA{120, 120, 120, 255})
			}
			text(img, w-20-textWidth("TARGET"), y(p.ref)-8, "TARGET", color.RGBA{120, 120, 120, 255})
		}
		text(img, left+6, top+4, p.title, p.col)
		for j := 1; j < len(r.Samples); j++ {
			a, b := r.Samples[j-1], r.Samples[j]
			if i == 2 {
				// Replicas are a step function.
				line(img, x(a.At), y(p.val(a)), x(b.At), y(p.val(a)), p.col)
				line(img, x(b.At), y(p.val(a)), x(b.At), y(p.val(b)), p.col)
				continue
			}
			line(img, x(a.At), y(p.val(a)), x(b.At), y(p.val(b)), p.col)
		}
		// Time ticks every 30 s.
		for t := 0.0; t <= tMax; t += 30 {
			tx := x(time.Duration(t * float64(time.Second)))
			vline(img, tx, bottom, bottom+3, color.RGBA{0, 0, 0, 255})
			if i == 2 {
				text(img, tx-textWidth(fmtNum(t))/2, bottom+6, fmtNum(t), color.RGBA{80, 80, 80, 255})
			}
		}
	}
	return writePNG(path, img)
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

// line draws a 2-pixel-wide line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// glyphs is a 3x5 pixel font: five rows of three bits per character.
var glyphs = map[rune][5]string{
	'0': {"111", "101", "101", "101", "111"}, '1': {"010", "110", "010", "010", "111"},
	'2': {"111", "001", "111", "100", "111"}, '3': {"111", "001", "111", "001", "111"},
	'4': {"101", "101", "111", "001", "001"}, '5': {"111", "100", "111", "001", "111"},
	'6': {"111", "100", "111", "101", "111"}, '7': {"111", "001", "010", "010", "010"},
	'8': {"111", "101", "111", "101", "111"}, '9': {"111", "101", "111", "001", "111"},
	'.': {"000", "000", "000", "000", "010"}, '/': {"001", "001", "010", "100", "100"},
	' ': {"000", "000", "000", "000", "000"},
	'A': {"010", "101", "111", "101", "101"}, 'B': {"110", "101", "110", "101", "110"},
	'H': {"101", "101", "111", "101", "101"}, 'K': {"101", "101", "110", "101", "101"},
	'U': {"101", "101", "101", "101", "111"}, 'V': {"101", "101", "101", "101", "010"},
	'X': {"101", "101", "010", "101", "101"}, 'Y': {"101", "101", "010", "010", "010"},
	'(': {"010", "100", "100", "100", "010"}, ')': {"010", "001", "001", "001", "010"},
	':': {"000", "010", "000", "010", "000"}, '-': {"000", "000", "111", "000", "000"},
	'C': {"111", "100", "100", "100", "111"},
	'D': {"110", "101", "101", "101", "110"}, 'E': {"111", "100", "110", "100", "111"},
	'F': {"111", "100", "110", "100", "100"}, 'G': {"111", "100", "101", "101", "111"},
	'I': {"111", "010", "010", "010", "111"}, 'L': {"100", "100", "100", "100", "111"},
	'M': {"101", "111", "111", "101", "101"}, 'N': {"110", "101", "101", "101", "101"},
	'O': {"111", "101", "101", "101", "111"}, 'P': {"111", "101", "111", "100", "100"},
	'R': {"110", "101", "110", "101", "101"}, 'S': {"111", "100", "111", "001", "111"},
	'T': {"111", "010", "010", "010", "010"}, 'W': {"101", "101", "111", "111", "101"},
}

const glyphScale = 2

func textWidth(s string) int { return len(s) * 4 * glyphScale }

func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, ch := range strings.ToUpper(s) {
		g, ok := glyphs[ch]
		if ok {
			for row := 0; row < 5; row++ {
				for col := 0; col < 3; col++ {
					if g[row][col] == '1' {
						fill(img, image.Rect(x+col*glyphScale, y+row*glyphScale, x+(col+1)*glyphScale, y+(row+1)*glyphScale), c)
					}
				}
			}
		}
		x += 4 * glyphScale
	}
}
