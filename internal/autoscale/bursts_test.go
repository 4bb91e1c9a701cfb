package autoscale

import (
	"strings"
	"testing"
	"time"
)

// needs returns inflow needs of r replicas every 5 s from from to to.
func needs(from, to int, r int32) []Recommendation {
	var out []Recommendation
	for s := from; s <= to; s += 5 {
		out = append(out, Recommendation{Time: at(s), Replicas: r})
	}
	return out
}

// cat joins recommendation lists.
func cat(lists ...[]Recommendation) []Recommendation {
	var out []Recommendation
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// While bursts recur, the replicas kept for them are let go when keeping
// them until the next burst costs more than two changes.
func TestBurstMemoryRelease(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second, BurstMemory: DefaultBurstMemory}
	// 150/s over 12 partitions needs 2 replicas; the bursts needed 12.
	quiet := uniform(1500, 12, 12, 1, 150, 150, 12)
	// Two bursts of 12 with a quiet gap of gap seconds, the second ending
	// 60 s before now (t=1500); the window still holds the second burst's
	// recommendations, the last minimum interval only quiet ones.
	state := func(gap int, recent int32) State {
		secondStart := 1380
		firstEnd := secondStart - gap
		return State{
			LastScaleTime: at(1200), LastScaleDown: at(700), Recurred: at(1435),
			InflowNeeds:     cat(needs(firstEnd-60, firstEnd, 12), needs(firstEnd+5, secondStart-5, 2), needs(secondStart, 1435, 12), needs(1440, 1495, recent)),
			Recommendations: cat(needs(1375, 1465, 12), needs(1470, 1495, recent)),
		}
	}
	tests := []struct {
		name       string
		state      State
		want       int32
		wantReason string
	}{
		{
			// Keeping 10 replicas for 600 s (6,000 replica-s) costs more
			// than two changes at 3 x 12 replicas x 30 s and the minimum
			// interval of the 10 (2,460).
			name: "a long gap lets the replicas go before the window ends", state: state(600, 2),
			want: 2, wantReason: "bursts recur 10m0s apart",
		},
		{
			// 10 x 200 s = 2,000 < 2,460: the burst memory keeps them.
			name: "a short gap keeps them", state: state(200, 2),
			want: 12, wantReason: "holding 12",
		},
		{
			// The lag engine's rates still fall: 3 is above the quiet 2, so
			// one step later rather than two now.
			name: "not before the recommendations are down to the quiet level", state: state(600, 3),
			want: 12, wantReason: "holding 12",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(Input{Spec: spec, State: tc.state, CurrentReplicas: 12, Now: at(1500), History: []Observation{quiet}})
			if d.Replicas != tc.want || !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("%d replicas, want %d; reason %q, want it to contain %q", d.Replicas, tc.want, d.Reason, tc.wantReason)
			}
			if tc.want == 12 && strings.Contains(d.Reason, "bursts recur") {
				t.Errorf("reason %q says the replicas are let go", d.Reason)
			}
		})
	}

	t.Run("one burst in the memory: the next is assumed a memory away", func(t *testing.T) {
		// Even the first burst: 10 replicas for 900 s cost more than two
		// changes, and the window would have held them 2 minutes.
		st := state(600, 2)
		st.InflowNeeds = st.InflowNeeds[13:] // from the quiet gap on
		st.Recurred = time.Time{}
		d := Decide(Input{Spec: spec, State: st, CurrentReplicas: 12, Now: at(1500), History: []Observation{quiet}})
		if d.Replicas != 2 || !strings.Contains(d.Reason, "one burst in the last 15m0s") {
			t.Errorf("%d replicas, want 2 before the window ends; reason %q", d.Replicas, d.Reason)
		}
	})
	t.Run("no release while a burst runs", func(t *testing.T) {
		st := state(600, 2)
		st.InflowNeeds = append(st.InflowNeeds[:len(st.InflowNeeds)-1], Recommendation{Time: at(1495), Replicas: 12})
		d := Decide(Input{Spec: spec, State: st, CurrentReplicas: 12, Now: at(1500), History: []Observation{quiet}})
		if strings.Contains(d.Reason, "bursts recur") {
			t.Errorf("%d replicas, reason %q: let go during a burst", d.Replicas, d.Reason)
		}
	})
}

// A burst that recurs is sized at once for the typical burst of the
// memory, not for the part of it the first poll saw.
func TestRecurringBurstSizedForTheTypicalOne(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second, BurstMemory: DefaultBurstMemory}
	// 300/s over 12 partitions, 100/s beyond what 2 replicas consume: with
	// the 3,000 records that build up over a 30 s scale-up delay, to drain
	// in 30 s, each partition needs 300/12/0.85 + 3600/12/30 = 39/s, so 2
	// per replica and 6 replicas. The earlier bursts needed 12, 8 and 12.
	rising := uniform(1500, 12, 600, 3, 300, 200, 2)
	past := cat(needs(400, 430, 12), needs(435, 700, 2), needs(705, 735, 8), needs(740, 1100, 2), needs(1105, 1135, 12), needs(1140, 1495, 2))
	tests := []struct {
		name       string
		needs      []Recommendation
		recurred   time.Time
		want       int32
		wantReason string
	}{
		{name: "bursts recur: the median burst", needs: past, recurred: at(1105), want: 12, wantReason: "the typical one needing 12 replicas"},
		{name: "no burst before: the inflow seen", needs: needs(1140, 1495, 2), recurred: at(1105), want: 6},
		{name: "memory over: the inflow seen", needs: past, recurred: at(100), want: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := State{LastScaleTime: at(1200), LastScaleDown: at(1200), Recurred: tc.recurred, InflowNeeds: tc.needs}
			d := Decide(Input{Spec: spec, State: st, CurrentReplicas: 2, Now: at(1500), History: []Observation{rising}})
			if d.Replicas != tc.want || !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("%d replicas, want %d; reason %q, want it to contain %q", d.Replicas, tc.want, d.Reason, tc.wantReason)
			}
		})
	}
}

// A first observation has no rates yet: the need it would record reads as
// zero, and a quietest need of zero makes every later need a burst, so
// the memory would never see one end.
func TestFirstObservationRecordsNoNeed(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second, BurstMemory: DefaultBurstMemory}
	first := uniform(0, 12, 0, 0, 0, 0, 2)
	d := Decide(Input{Spec: spec, CurrentReplicas: 2, Now: at(0), History: []Observation{first}})
	if len(d.State.InflowNeeds) != 0 {
		t.Fatalf("first observation recorded inflow needs %v", d.State.InflowNeeds)
	}
	second := uniform(5, 12, 12, 1, 150, 150, 2)
	d = Decide(Input{Spec: spec, State: d.State, CurrentReplicas: 2, Now: at(5), History: []Observation{first, second}})
	if n := d.State.InflowNeeds; len(n) != 1 || n[0].Replicas != 2 {
		t.Fatalf("second observation: inflow needs %v, want one need of 2", n)
	}
}
