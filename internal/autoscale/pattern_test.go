package autoscale

import (
	"strings"
	"testing"
	"time"
)

// feed runs learnPattern over a level sampled every step seconds from
// 0 to end.
func feed(level func(s int) float64, end, step int) Pattern {
	var p Pattern
	for s := 0; s <= end; s += step {
		p = learnPattern(p, at(s), level(s), 6*time.Hour)
	}
	return p
}

// batches is 50/s, with 500/s for 60 s every period seconds from first.
func batches(first, period int) func(int) float64 {
	return func(s int) float64 {
		if s >= first && (s-first)%period < 60 {
			return 500
		}
		return 50
	}
}

func TestFindRecurrence(t *testing.T) {
	tests := []struct {
		name   string
		level  func(int) float64
		end    int
		now    int
		want   time.Duration
		wantOK bool
	}{
		{"three batches ten minutes apart make a period", batches(300, 600), 1600, 1600, 10 * time.Minute, true},
		{"two batches are not yet a period", batches(300, 600), 1000, 1000, 0, false},
		{"an hourly cycle is found", batches(300, 3600), 3*3600 + 400, 3*3600 + 400, time.Hour, true},
		{"uneven gaps make no period", func(s int) float64 {
			if (s >= 300 && s < 360) || (s >= 700 && s < 760) || (s >= 1600 && s < 1660) {
				return 500
			}
			return 50
		}, 1700, 1700, 0, false},
		{"a period shorter than a minute is not looked for", batches(0, 40), 400, 400, 0, false},
		{"a batch that does not come is forgotten", batches(300, 600), 1600, 2600, 0, false},
		{"a steady level has no bursts", func(int) float64 { return 50 }, 3600, 3600, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := feed(tt.level, tt.end, 5)
			r, ok := findRecurrence(p, at(tt.now), 5*time.Second)
			if ok != tt.wantOK {
				t.Fatalf("found %v (%v, bursts %d), want %v", ok, r.period, len(p.Bursts), tt.wantOK)
			}
			if ok && (r.period < tt.want-10*time.Second || r.period > tt.want+10*time.Second) {
				t.Errorf("period %v, want %v", r.period, tt.want)
			}
			if ok && r.peak < 400 {
				t.Errorf("peak %v, want the batches' 500/s", r.peak)
			}
		})
	}
}

func TestPatternForgetsOldBursts(t *testing.T) {
	var p Pattern
	for s := 0; s <= 4000; s += 5 {
		p = learnPattern(p, at(s), batches(0, 100)(s), 10*time.Minute)
	}
	if len(p.Bursts) > maxBursts {
		t.Errorf("kept %d bursts, want at most %d", len(p.Bursts), maxBursts)
	}
	for _, b := range p.Bursts {
		if at(4000).Sub(b.End) > 10*time.Minute {
			t.Errorf("burst ending %v kept past the memory", b.End)
		}
	}
}

func TestNeedsRememberTheLastTimeEachCountWasNeeded(t *testing.T) {
	var needs []Recommendation
	for _, r := range []Recommendation{{at(0), 2}, {at(100), 8}, {at(200), 5}, {at(300), 3}} {
		needs = addNeed(needs, r)
	}
	low := lowSince(needs, at(400))
	for n, want := range map[int32]time.Duration{2: 100 * time.Second, 3: 200 * time.Second, 5: 300 * time.Second, 7: 300 * time.Second, 8: maxHorizon} {
		if got := low(n); got != want {
			t.Errorf("low(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestBatchIsProvisionedAhead: after three batches ten minutes apart, the
// group is scaled up before the fourth arrives, and the reason says so.
func TestBatchIsProvisionedAhead(t *testing.T) {
	spec := Spec{MinReplicas: 1, MaxLagSeconds: 30, ThroughputPerReplica: 100, BurstMemory: DefaultBurstMemory}
	level := batches(300, 600)
	var st State
	var history []Observation
	cur := int32(1)
	var ahead string
	for s := 0; s < 300+3*600; s += 5 {
		in := level(s)
		members := int(cur)
		o := uniform(s, 12, 0, 0, in, in, members)
		if in > 90*float64(cur) {
			o = uniform(s, 12, int64(10*in), 10, in, 90*float64(cur), members)
		}
		history = append(history, o)
		if len(history) > 128 {
			history = history[1:]
		}
		d := Decide(Input{Spec: spec, History: history, State: st, CurrentReplicas: cur, Now: at(s)})
		st = d.State
		if d.Replicas > cur && level(s) == 50 && strings.Contains(d.Reason, "ahead of the batch") {
			ahead = d.Reason
		}
		cur = d.Replicas
	}
	if ahead == "" {
		t.Fatal("no scale-up ahead of the fourth batch")
	}
	if !strings.Contains(ahead, "seen every 10m0s, 3 times") {
		t.Errorf("reason %q, want the period and its count", ahead)
	}
}
