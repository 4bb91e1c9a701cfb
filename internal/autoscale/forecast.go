package autoscale

import (
	"fmt"
	"math"
	"time"
)

// inflowForecast is the forecast stage's answer: the inflow expected over
// the plan's horizon, per partition.
type inflowForecast struct {
	// rates are each partition's inflow now, records/s.
	rates []float64
	// total is their sum, or the group's inflow without partition data.
	total float64
	// slope is the trend of the total inflow, records/s per second; only a
	// rising trend is extrapolated, so it is never negative.
	slope float64
	// recurring is the period found in the load, when there is one and its
	// next burst is still to come.
	recurring *recurrence
	// pulseFrom and pulseTo are the seconds from now between which the
	// next recurring burst is expected.
	pulseFrom, pulseTo float64
	// poll is the interval between two observations, the resolution at
	// which the group is seen.
	poll time.Duration
	// now is the forecast's time.
	now time.Time
}

// forecast is the third stage: the inflow over the plan's horizon, from
// the newest inflow estimate, the trend of the last trendWindow, and the
// next burst of a recurring pattern.
func forecast(spec Spec, st State, history []Observation, now time.Time) inflowForecast {
	o := history[len(history)-1]
	f := inflowForecast{rates: inflowNow(history, spec.Without&MechGrowth == 0), poll: pollInterval(history), now: now}
	f.total = sum(f.rates)
	if len(o.Partitions) == 0 {
		f.total = o.ProductionRate
	}
	if spec.Without&MechTrend == 0 {
		f.slope = max(0, trend(history, o.Time.Add(-trendWindow)))
	}
	if spec.BurstMemory <= 0 {
		return f
	}
	if spec.Without&MechRecurrence != 0 {
		return f
	}
	r, ok := findRecurrence(st.Pattern, now, f.poll)
	if !ok {
		return f
	}
	if n := len(st.Pattern.Bursts); n > 0 && st.Pattern.Bursts[n-1].Open {
		// In the burst now: the inflow estimate already carries it.
		return f
	}
	f.recurring = &r
	f.pulseFrom = max(0, r.next.Sub(now).Seconds())
	f.pulseTo = f.pulseFrom + (r.length + f.poll).Seconds()
	return f
}

// at is the total inflow expected t seconds from now.
func (f inflowForecast) at(t float64) float64 {
	v := f.total + f.slope*t
	if f.recurring != nil && t >= f.pulseFrom && t < f.pulseTo {
		v = max(v, f.recurring.peak)
	}
	return v
}

// scale is at(t) over the inflow now: what each partition's rate is
// multiplied by at t. Without inflow now, the expected inflow is spread
// evenly (share is then the partition count's inverse).
func (f inflowForecast) scale(t float64) float64 {
	if f.total <= 0 {
		return 0
	}
	return f.at(t) / f.total
}

// describe says what the forecast adds to the inflow now, for a reason.
func (f inflowForecast) describe() string {
	s := ""
	if f.slope > 0 {
		s += fmt.Sprintf(", rising %s/s per minute", num(60*f.slope))
	}
	return s
}

// trend is the least-squares slope of the group's inflow (its smoothed
// production rate) over the observations since start, records/s per
// second; 0 with fewer than three, or when the history does not reach back
// to start (the lag engine's first rates rise from zero as its smoothing
// fills, which is no trend).
func trend(history []Observation, start time.Time) float64 {
	if len(history) == 0 || history[0].Time.After(start) {
		return 0
	}
	var n, sx, sy, sxx, sxy float64
	t0 := history[len(history)-1].Time
	for _, o := range history {
		if o.Time.Before(start) || o.Stale || o.Missing {
			continue
		}
		x, y := o.Time.Sub(t0).Seconds(), o.ProductionRate
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	d := n*sxx - sx*sx
	if n < 3 || d <= 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// pollInterval is the median time between the last observations, the
// resolution at which the group is seen; 5 s (the API's default poll)
// before there are two.
func pollInterval(history []Observation) time.Duration {
	var gaps []time.Duration
	for i := len(history) - 1; i > 0 && len(gaps) < 5; i-- {
		if g := history[i].Time.Sub(history[i-1].Time); g > 0 {
			gaps = append(gaps, g)
		}
	}
	if len(gaps) == 0 {
		return 5 * time.Second
	}
	for i := 1; i < len(gaps); i++ {
		for j := i; j > 0 && gaps[j] < gaps[j-1]; j-- {
			gaps[j], gaps[j-1] = gaps[j-1], gaps[j]
		}
	}
	return gaps[len(gaps)/2]
}

// halfLifeWeight is the weight of a new value in a moving average with the
// given half-life, after dt.
func halfLifeWeight(dt, halfLife time.Duration) float64 {
	if dt <= 0 {
		return 0
	}
	return 1 - math.Exp2(-float64(dt)/float64(halfLife))
}
