package autoscale

import (
	"fmt"
	"testing"
	"time"
)

// fluidRun drives Decide every 5 s over a group of 12 partitions whose
// replicas consume 100 records/s each, under bursts of burst records/s for
// 60 s every period seconds on a base of 150/s, for the given seconds. It
// returns every decision with its time.
func fluidRun(spec Spec, burst float64, period, seconds int) []Decision {
	const (
		step     = 5
		capacity = 100.0
		parts    = 12
	)
	var (
		history []Observation
		st      State
		out     []Decision
		lag     float64
		cur     int32 = 2
	)
	for s := 0; s <= seconds; s += step {
		inflow := 150.0
		if s%period < 60 {
			inflow = burst
		}
		consumed := min(float64(cur)*capacity, inflow+lag/step)
		lag = max(0, lag+(inflow-consumed)*step)
		o := uniform(s, parts, int64(lag), lag/max(inflow, 1), inflow, consumed, int(cur))
		history = append(history, o)
		if len(history) > 128 {
			history = history[1:]
		}
		d := Decide(Input{Spec: spec, History: history, State: st, CurrentReplicas: cur, Now: at(s)})
		st, cur = d.State, d.Replicas
		out = append(out, d)
	}
	return out
}

// windowViolations lists the scale-downs of a run that came before the
// window had passed: a raw recommendation above the new count within the
// window before it, or a window not yet covered by recommendations.
func windowViolations(ds []Decision, window time.Duration) []string {
	var bad []string
	for i := 1; i < len(ds); i++ {
		prev, d := ds[i-1], ds[i]
		if d.Replicas >= prev.Replicas {
			continue
		}
		now := at(5 * i)
		if now.Sub(at(0)) < window {
			bad = append(bad, fmt.Sprintf("%s: %d -> %d before a whole window of recommendations", now.Sub(at(0)), prev.Replicas, d.Replicas))
			continue
		}
		for j := i; j >= 0 && !at(5*j).Before(now.Add(-window)); j-- {
			if r := ds[j].Recommendation; !ds[j].Hold && r > d.Replicas {
				bad = append(bad, fmt.Sprintf("%s: %d -> %d, but %d was recommended at %s", now.Sub(at(0)), prev.Replicas, d.Replicas, r, at(5*j).Sub(at(0))))
				break
			}
		}
	}
	return bad
}

// A scaleDownStabilizationSeconds the user sets is a floor: no path of
// Decide, the burst memory's release included, removes replicas while a
// higher recommendation is within the window.
func TestExplicitStabilizationIsAFloor(t *testing.T) {
	for _, window := range []time.Duration{60 * time.Second, 300 * time.Second, 900 * time.Second} {
		for _, mem := range []time.Duration{0, DefaultBurstMemory, time.Hour} {
			for _, period := range []int{240, 600, 1500} {
				name := fmt.Sprintf("window %s, memory %s, bursts every %ds", window, mem, period)
				t.Run(name, func(t *testing.T) {
					spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30,
						ScaleDownStabilization: window, ExplicitStabilization: true, BurstMemory: mem}
					ds := fluidRun(spec, 1100, period, 2*3600)
					downs := 0
					for i := 1; i < len(ds); i++ {
						if ds[i].Replicas < ds[i-1].Replicas {
							downs++
						}
					}
					if downs == 0 && period > int(window.Seconds())+120 {
						t.Fatalf("no scale-down at all in the run: the check would pass vacuously")
					}
					for _, v := range windowViolations(ds, window) {
						t.Error(v)
					}
				})
			}
		}
	}
}

// The scaler's own default window is not a promise: after a single burst
// the release may let the replicas go before it passes. This is what an
// explicit window turns off, and it shows that the check above can fail.
func TestDefaultStabilizationMayBeShortened(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30,
		ScaleDownStabilization: 900 * time.Second, BurstMemory: DefaultBurstMemory}
	ds := fluidRun(spec, 1100, 1500, 3*3600)
	if len(windowViolations(ds, spec.ScaleDownStabilization)) == 0 {
		t.Fatal("the release never scaled in before the default window ended; expected it to, once keeping a burst's replicas costs more")
	}
}
