// Package produce is the load generator behind `lagscale produce`: it
// writes records to a topic at a rate that follows a profile, paced by a
// token bucket so that the same profile sends the same number of records at
// the same times on every run.
package produce

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Profile shapes, used in a --profile segment.
const (
	// ShapeConstant (alias steady) sends base*factor records/s; factor 1.
	ShapeConstant = "constant"
	// ShapeStep sends base for the first half of the segment and
	// base*factor for the second half; factor 3. Without a duration the
	// step comes after 30s.
	ShapeStep = "step"
	// ShapeRamp rises linearly from 0 to base*factor over the segment;
	// factor 1. Without a duration it ramps over 60s and then holds.
	ShapeRamp = "ramp"
	// ShapeSine oscillates around base with amplitude base*factor and a
	// period of the segment's duration (60s without one); factor 0.5.
	ShapeSine = "sine"
	// ShapeSpikes sends base, except during the first second of every 10s
	// where it sends base*factor; factor 10.
	ShapeSpikes = "spikes"
	// ShapeBurst sends base*factor; factor 5.
	ShapeBurst = "burst"
	// ShapeIdle sends nothing.
	ShapeIdle = "idle"
)

var defaultFactor = map[string]float64{
	ShapeConstant: 1, ShapeStep: 3, ShapeRamp: 1, ShapeSine: 0.5, ShapeSpikes: 10, ShapeBurst: 5, ShapeIdle: 0,
}

// Segment is one part of a profile.
type Segment struct {
	// Shape is one of the Shape constants.
	Shape string
	// Duration is how long the segment lasts; 0 means until the run ends
	// (only the last segment may omit it).
	Duration time.Duration
	// Factor scales the base rate as the shape describes.
	Factor float64
}

// Profile is a sequence of segments. When every segment has a duration the
// sequence repeats for as long as the run lasts.
type Profile struct {
	Segments []Segment
}

// ParseProfile parses a profile:
//
//	profile := segment { "," segment }
//	segment := shape [ ":" duration ] [ "@" factor [ "x" ] ]
//
// where shape is constant (or steady), step, ramp, sine, spikes, burst or
// idle, duration is a Go duration ("90s", "2m") and factor a positive
// number ("5x", "0.5"). Examples: "constant", "sine:120s@0.8",
// "steady:60s,burst:120s@5x,idle:30s". Only the last segment may omit its
// duration.
func ParseProfile(s string) (Profile, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Profile{Segments: []Segment{{Shape: ShapeConstant, Factor: 1}}}, nil
	}
	parts := strings.Split(s, ",")
	p := Profile{Segments: make([]Segment, 0, len(parts))}
	for i, part := range parts {
		seg, err := parseSegment(strings.TrimSpace(part))
		if err != nil {
			return Profile{}, fmt.Errorf("profile segment %d %q: %w", i+1, part, err)
		}
		if seg.Duration == 0 && i != len(parts)-1 {
			return Profile{}, fmt.Errorf("profile segment %d %q: only the last segment may omit its duration", i+1, part)
		}
		p.Segments = append(p.Segments, seg)
	}
	return p, nil
}

func parseSegment(s string) (Segment, error) {
	var seg Segment
	rest := s
	factor := ""
	if i := strings.Index(rest, "@"); i >= 0 {
		rest, factor = rest[:i], rest[i+1:]
	}
	dur := ""
	if i := strings.Index(rest, ":"); i >= 0 {
		rest, dur = rest[:i], rest[i+1:]
	}
	seg.Shape = strings.ToLower(strings.TrimSpace(rest))
	if seg.Shape == "steady" {
		seg.Shape = ShapeConstant
	}
	f, ok := defaultFactor[seg.Shape]
	if !ok {
		return Segment{}, errors.New("unknown shape: expected constant, steady, step, ramp, sine, spikes, burst or idle")
	}
	seg.Factor = f
	if dur != "" {
		d, err := time.ParseDuration(dur)
		if err != nil || d <= 0 {
			return Segment{}, fmt.Errorf("duration %q: expected a positive Go duration such as 30s or 2m", dur)
		}
		seg.Duration = d
	}
	if factor != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.ToLower(factor), "x"), 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) {
			return Segment{}, fmt.Errorf("factor %q: expected a positive number such as 5x or 0.5", factor)
		}
		seg.Factor = v
	}
	return seg, nil
}

// Period is the length of one pass through the profile, or 0 when the last
// segment runs until the end.
func (p Profile) Period() time.Duration {
	var total time.Duration
	for _, s := range p.Segments {
		if s.Duration == 0 {
			return 0
		}
		total += s.Duration
	}
	return total
}

// Rate is the target rate in records/s at elapsed time t for a base rate.
func (p Profile) Rate(base float64, t time.Duration) float64 {
	if len(p.Segments) == 0 || t < 0 {
		return 0
	}
	if period := p.Period(); period > 0 {
		t %= period
	}
	for _, s := range p.Segments {
		if s.Duration == 0 || t < s.Duration {
			return s.rate(base, t)
		}
		t -= s.Duration
	}
	return 0
}

func (s Segment) rate(base float64, t time.Duration) float64 {
	switch s.Shape {
	case ShapeConstant, ShapeBurst:
		return base * s.Factor
	case ShapeIdle:
		return 0
	case ShapeStep:
		half := s.Duration / 2
		if half == 0 {
			half = 30 * time.Second
		}
		if t < half {
			return base
		}
		return base * s.Factor
	case ShapeRamp:
		d := s.Duration
		if d == 0 {
			d = time.Minute
		}
		if t >= d {
			return base * s.Factor
		}
		return base * s.Factor * float64(t) / float64(d)
	case ShapeSine:
		period := s.Duration
		if period == 0 {
			period = time.Minute
		}
		return max(0, base*(1+s.Factor*math.Sin(2*math.Pi*float64(t)/float64(period))))
	case ShapeSpikes:
		if t%(10*time.Second) < time.Second {
			return base * s.Factor
		}
		return base
	}
	return 0
}

// Pacer turns a rate profile into a number of records due at each instant:
// a token bucket filled at the profile's rate. It is deterministic: the
// same sequence of Advance calls yields the same counts.
type Pacer struct {
	profile Profile
	base    float64
	last    time.Duration
	credit  float64
	// burst caps the credit so that a stalled sender does not flood the
	// broker when it catches up: at most one second of the current rate
	// (and at least one record).
	burst time.Duration
}

// NewPacer returns a pacer at elapsed time 0.
func NewPacer(p Profile, base float64) *Pacer {
	return &Pacer{profile: p, base: base, burst: time.Second}
}

// Advance moves the pacer to elapsed time now and returns how many records
// are due. Rates are integrated in steps of at most 10ms.
func (p *Pacer) Advance(now time.Duration) int64 {
	const step = 10 * time.Millisecond
	for p.last < now {
		d := min(step, now-p.last)
		r0 := p.profile.Rate(p.base, p.last)
		r1 := p.profile.Rate(p.base, p.last+d)
		p.credit += (r0 + r1) / 2 * d.Seconds()
		p.last += d
		if limit := max(1, r1*p.burst.Seconds()); p.credit > limit {
			p.credit = limit
		}
	}
	n := int64(math.Floor(p.credit + 1e-9))
	p.credit -= float64(n)
	return n
}
