package lag

import (
	"time"
)

// This file holds the pure arithmetic of the engine: no I/O, no clock. Every
// function takes the observation time as a parameter.

// PartitionLagFor returns the lag of one partition. With a commit it is
// end - committed. Without one it follows the reset policy: "earliest" counts
// every retained record (end - logStart, not end - 0, because retention has
// already removed the rest) and "latest" counts nothing. The result is never
// negative.
func PartitionLagFor(logStart, end, committed int64, hasCommit bool, policy string) int64 {
	var lag int64
	switch {
	case hasCommit:
		lag = end - committed
	case policy == ResetEarliest:
		lag = end - logStart
	default:
		lag = 0
	}
	return max(lag, 0)
}

// position returns the offset the group will consume next on a partition:
// the committed offset, or the one the reset policy would choose.
func position(logStart, end, committed int64, hasCommit bool, policy string) int64 {
	switch {
	case hasCommit:
		return committed
	case policy == ResetEarliest:
		return logStart
	default:
		return end
	}
}

// point is one observation of an offset.
type point struct {
	t int64 // unix nanoseconds
	v int64
}

// series is a bounded history of an offset that only grows (an end offset or
// a committed offset). A run of equal values is kept as its first and last
// observations, so a quiet partition does not push useful history out: the
// first point says when the value was reached, the last how long it stayed.
type series struct {
	pts []point
	max int
}

func newSeries(maxPoints int) *series {
	return &series{max: max(maxPoints, 4)}
}

// add appends an observation. It returns true when the value went down, in
// which case the history before it is discarded (it describes another log,
// or a rewound group, and cannot be interpolated across).
func (s *series) add(t time.Time, v int64) (decreased bool) {
	p := point{t: t.UnixNano(), v: v}
	n := len(s.pts)
	if n > 0 && p.t <= s.pts[n-1].t {
		return false // out of order or duplicate observation
	}
	if n > 0 && v < s.pts[n-1].v {
		s.pts = append(s.pts[:0], p)
		return true
	}
	if n >= 2 && s.pts[n-1].v == v && s.pts[n-2].v == v {
		s.pts[n-1] = p
		return false
	}
	if n == s.max {
		copy(s.pts, s.pts[1:])
		s.pts = s.pts[:n-1]
	}
	s.pts = append(s.pts, p)
	return false
}

// first returns the oldest observation.
func (s *series) first() (point, bool) {
	if len(s.pts) == 0 {
		return point{}, false
	}
	return s.pts[0], true
}

// valueAt interpolates the value at time t; before the oldest point it
// returns the oldest value.
func (s *series) valueAt(t int64) float64 {
	if len(s.pts) == 0 {
		return 0
	}
	if t <= s.pts[0].t {
		return float64(s.pts[0].v)
	}
	for i := 1; i < len(s.pts); i++ {
		a, b := s.pts[i-1], s.pts[i]
		if t <= b.t {
			f := float64(t-a.t) / float64(b.t-a.t)
			return float64(a.v) + f*float64(b.v-a.v)
		}
	}
	return float64(s.pts[len(s.pts)-1].v)
}

// rate is the slope of the series over the window that ends at its newest
// point, in units per second. Using the slope over a window of several polls
// rather than between two polls is the smoothing: one late commit only moves
// the value at one end of the window, and one burst is spread over the whole
// window. With less history than the window, the whole history is used.
// Decreases reset the history, so the rate is never negative.
func (s *series) rate(window time.Duration) float64 {
	if len(s.pts) < 2 {
		return 0
	}
	end := s.pts[len(s.pts)-1]
	start := max(end.t-int64(window), s.pts[0].t)
	if end.t <= start {
		return 0
	}
	r := (float64(end.v) - s.valueAt(start)) / (float64(end.t-start) / 1e9)
	return max(r, 0)
}

// producedAt estimates when the record at offset off was appended, from an
// end-offset series: the moment the end offset first exceeded off, that is,
// reached off+1, interpolated linearly between the two observations around
// it. It returns false when the record does not exist yet (off >= newest end).
//
// When the record is older than the oldest observation we extrapolate
// backwards from the oldest point with the given production rate; with no
// rate we return the oldest point's time, which makes the time lag a lower
// bound (the best honest answer without older history).
func (s *series) producedAt(off int64, rate float64) (int64, bool) {
	target := off + 1
	n := len(s.pts)
	if n == 0 || target > s.pts[n-1].v {
		return 0, false
	}
	if target <= s.pts[0].v {
		first := s.pts[0]
		if rate > 0 {
			return first.t - int64(float64(first.v-target)/rate*1e9), true
		}
		return first.t, true
	}
	for i := 1; i < n; i++ {
		a, b := s.pts[i-1], s.pts[i]
		if target <= b.v {
			f := float64(target-a.v) / float64(b.v-a.v)
			return a.t + int64(f*float64(b.t-a.t)), true
		}
	}
	return s.pts[n-1].t, true
}

// timeLagSeconds is how long before now the record at the group's position
// was produced, from the records' timestamps read so far (stamps) and the
// end-offset history; zero when the group is at the end.
func timeLagSeconds(ends *series, stamps []stamp, pos, end int64, productionRate float64, now time.Time) float64 {
	if pos >= end {
		return 0
	}
	at, ok := producedAtStamped(ends, stamps, pos, productionRate)
	if !ok {
		return 0
	}
	return max(float64(now.UnixNano()-at)/1e9, 0)
}

// healthInput is what classifyHealth looks at for one partition.
type healthInput struct {
	// Lag is the partition's lag now.
	Lag int64
	// HasCommit is whether the group has a committed offset here.
	HasCommit bool
	// Covered is whether the history spans the whole window; before that
	// only REWIND can be judged.
	Covered bool
	// CommitMoved is whether the committed offset changed within the window.
	CommitMoved bool
	// Rewound is whether the committed offset went down within the window.
	Rewound bool
	// LagGrew is whether the lag now is larger than at the window's start.
	LagGrew bool
	// ProductionRate and ConsumptionRate are the smoothed rates.
	ProductionRate, ConsumptionRate float64
	// Members is the group's member count, -1 when unknown.
	Members int
}

// lagGrew reports whether a partition's lag grew over the health window by
// more than commit timing alone explains. A group that keeps up still shows
// the records it has processed but not yet committed as lag: up to one
// commit interval's worth of production, or one poll interval's when it
// commits more often than it is polled. Only growth beyond that (and beyond
// 10% of where it was) means the group falls behind: WARN is for a trend,
// not for the saw-tooth of periodic commits.
func lagGrew(lagNow, lagThen, productionRate float64, interval, commitEvery time.Duration) bool {
	slack := max(productionRate*max(interval, commitEvery).Seconds(), 0.1*lagThen, 1)
	return lagNow > lagThen+slack
}

// moveInterval is the mean time between two moves of s's value, over the
// gaps of at most longest (a longer gap is a stall, which health reports as
// such, not a cadence); 0 when the value never moved. The stretch from the
// first point to the first move counts as a gap: it is a lower bound of
// one, and it gives a cadence from the first move on. For a
// committed-offset history it is the group's commit interval as the polls
// see it.
func (s *series) moveInterval(longest time.Duration) time.Duration {
	if len(s.pts) == 0 {
		return 0
	}
	var sum, n int64
	last := s.pts[0].t
	for i := 1; i < len(s.pts); i++ {
		if s.pts[i].v == s.pts[i-1].v {
			continue
		}
		if gap := s.pts[i].t - last; gap <= int64(longest) {
			sum += gap
			n++
		}
		last = s.pts[i].t
	}
	if n == 0 {
		return 0
	}
	return time.Duration(sum / n)
}

// classifyHealth judges a partition over the window. The order matters:
// a rewind is reported first because it explains any lag jump; then no lag
// is always OK; STOP and STALL both mean lag with a committed offset that
// does not move, and differ by whether anybody is there: STOP when the group
// has no members (or has never committed here), STALL when members exist
// but do not commit; WARN when commits move but lag still grows.
func classifyHealth(in healthInput) Health {
	switch {
	case in.Rewound:
		return HealthRewind
	case in.Lag <= 0:
		return HealthOK
	case !in.Covered:
		return HealthOK
	case !in.HasCommit:
		return HealthStop
	case !in.CommitMoved && in.Members == 0:
		return HealthStop
	case !in.CommitMoved:
		return HealthStall
	case in.LagGrew && in.ConsumptionRate < in.ProductionRate:
		return HealthWarn
	default:
		return HealthOK
	}
}
