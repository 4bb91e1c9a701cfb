package autoscale

import (
	"fmt"
	"time"
)

// hold is the first stage: the cases in which no recommendation is made
// and the replicas that run are kept. Paused freezes them even outside
// the bounds; every other hold still applies minReplicas and maxReplicas,
// the user's explicit limits, which need no lag data.
func hold(in Input, spec Spec, st State, obs Observation, lo, hi int32) (Decision, bool) {
	cur := in.CurrentReplicas
	var why string
	switch {
	case spec.Paused:
		return Decision{Replicas: cur, Recommendation: cur, Hold: true, State: st,
			Reason: fmt.Sprintf("paused: holding %d replicas", cur)}, true
	case len(in.History) == 0 || obs.Missing:
		why = "no lag data"
	case obs.Stale:
		why = fmt.Sprintf("lag data stale since %s", obs.Time.UTC().Format(time.RFC3339))
	case obs.Rebalancing():
		why = fmt.Sprintf("group %s", obs.GroupState)
		if st.Model.RebalancingSince.IsZero() {
			// The rebalance pause is measured from here to the first
			// stable observation (learnRebalancePause).
			st.Model.RebalancingSince = obs.Time
		}
	default:
		return Decision{}, false
	}
	r := clamp(cur, lo, hi)
	d := Decision{Replicas: r, Recommendation: cur, Hold: true, Changed: r != cur, State: st}
	d.Reason = fmt.Sprintf("%s: holding %d replicas", why, cur)
	if r != cur {
		d.Reason = fmt.Sprintf("%s; %d replicas bounded to %d (min %d, max %d)", why, cur, r, lo, hi)
		d.State.Scale.LastScaleTime = in.Now
	}
	return d, true
}
