package autoscale

import (
	"fmt"
	"slices"
	"time"
)

// learnPattern advances the load's pattern with the inflow level at now:
// a level of burstFactor times the quiet level or more opens a burst, or
// extends the open one; below it the open burst closes and the quiet level
// follows the inflow. Bursts older than mem are forgotten.
func learnPattern(p Pattern, now time.Time, level float64, mem time.Duration) Pattern {
	n := len(p.Bursts)
	open := n > 0 && p.Bursts[n-1].Open
	if p.QuietAt.IsZero() {
		p.Quiet, p.QuietAt = level, now
		return p
	}
	hot := level > 0 && level >= burstFactor*p.Quiet
	switch {
	case hot && open:
		b := &p.Bursts[n-1]
		b.End, b.Peak = now, max(b.Peak, level)
	case hot:
		p.Bursts = append(p.Bursts, Burst{Start: now, End: now, Peak: level, Open: true})
	default:
		if open {
			p.Bursts[n-1].Open = false
		}
		p.Quiet += halfLifeWeight(now.Sub(p.QuietAt), quietHalfLife) * (level - p.Quiet)
		p.QuietAt = now
	}
	first := 0
	for first < len(p.Bursts) && now.Sub(p.Bursts[first].End) > mem {
		first++
	}
	p.Bursts = p.Bursts[first:]
	if len(p.Bursts) > maxBursts {
		p.Bursts = p.Bursts[len(p.Bursts)-maxBursts:]
	}
	return p
}

// recurrence is a period found in the load's bursts.
type recurrence struct {
	// period is the time between two bursts' starts.
	period time.Duration
	// next is when the next burst is expected to start.
	next time.Time
	// seen is how many bursts, evenly spaced, make the period.
	seen int
	// peak is the median peak inflow of those bursts, records/s.
	peak float64
	// length is the median length of those bursts.
	length time.Duration
}

// String is how a reason cites the recurrence.
func (r recurrence) String() string {
	return fmt.Sprintf("seen every %s, %d times", r.period.Round(time.Second), r.seen)
}

// findRecurrence looks for a period in p's bursts at now: the newest
// bursts' starts evenly spaced, recurrenceSeen of them or more, between
// minPeriod and maxPeriod apart, to within periodTolerance of the period
// or the resolution the starts are seen at (slack, the poll interval). A
// period whose next burst is overdue by more than the tolerance is
// forgotten: ok is false until bursts are evenly spaced again.
func findRecurrence(p Pattern, now time.Time, slack time.Duration) (recurrence, bool) {
	bs := p.Bursts
	n := len(bs)
	if n < recurrenceSeen {
		return recurrence{}, false
	}
	last := bs[n-1].Start.Sub(bs[n-2].Start)
	if last < minPeriod || last > maxPeriod {
		return recurrence{}, false
	}
	tol := max(time.Duration(periodTolerance*float64(last)), 2*slack)
	matched := []Burst{bs[n-1], bs[n-2]}
	total := last
	for i := n - 2; i > 0; i-- {
		gap := bs[i].Start.Sub(bs[i-1].Start)
		if gap < last-tol || gap > last+tol {
			break
		}
		matched = append(matched, bs[i-1])
		total += gap
	}
	if len(matched) < recurrenceSeen {
		return recurrence{}, false
	}
	period := total / time.Duration(len(matched)-1)
	r := recurrence{period: period, seen: len(matched), next: bs[n-1].Start.Add(period)}
	if now.After(r.next.Add(tol)) && !bs[n-1].Open {
		// Overdue: the load stopped recurring.
		return recurrence{}, false
	}
	peaks := make([]float64, 0, len(matched))
	lengths := make([]time.Duration, 0, len(matched))
	for _, b := range matched {
		peaks = append(peaks, b.Peak)
		if !b.Open {
			lengths = append(lengths, b.End.Sub(b.Start))
		}
	}
	slices.Sort(peaks)
	slices.Sort(lengths)
	r.peak = peaks[len(peaks)/2]
	if len(lengths) > 0 {
		r.length = lengths[len(lengths)/2]
	}
	return r, true
}

// addNeed records that need replicas were needed at r.Time. needs keeps,
// for every count, the last time it was needed: entries are oldest first
// with decreasing counts, so an entry is dropped once a later one needs as
// many, and entries older than maxHorizon are dropped too.
func addNeed(needs []Recommendation, r Recommendation) []Recommendation {
	out := make([]Recommendation, 0, len(needs)+1)
	for _, e := range needs {
		if e.Replicas > r.Replicas && r.Time.Sub(e.Time) <= maxHorizon {
			out = append(out, e)
		}
	}
	return append(out, r)
}

// lowSince returns, for a count n, how long before now the load last
// needed more than n replicas (maxHorizon when not within it).
func lowSince(needs []Recommendation, now time.Time) func(int32) time.Duration {
	return func(n int32) time.Duration {
		for i := len(needs) - 1; i >= 0; i-- {
			if needs[i].Replicas > n {
				return now.Sub(needs[i].Time)
			}
		}
		return maxHorizon
	}
}
