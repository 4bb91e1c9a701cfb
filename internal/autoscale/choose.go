package autoscale

import (
	"fmt"
	"math"
	"time"
)

// choose is the last stage: given the recommendation rec and the bounds,
// when to make the change. A scale-up is made at once, except within the
// minimum interval of the last change while that change's pods are
// joining; a scale-down waits for the stabilization window.
func choose(in Input, spec Spec, st State, rec recommendation, obs Observation, lo, hi int32) (int32, string) {
	cur := in.CurrentReplicas
	target := clamp(rec.raw, lo, hi)
	why := rec.why
	if target != rec.raw {
		why += fmt.Sprintf(", bounded to %d (min %d, max %d)", target, lo, hi)
	}
	switch {
	case target < cur && obs.Partial && cur <= hi:
		// Part of the group is invisible: its lag may need every replica
		// that runs.
		return cur, fmt.Sprintf("%s; holding %d", why, cur)
	case target > cur:
		// Within the minimum interval of the last change its pods are not
		// consuming yet, and another change would restart the rebalance
		// they wait for; but while they have not even joined, there is no
		// rebalance to protect. Waking from zero and raising to
		// minReplicas are exempt: nothing consumes, or the user asked.
		if cur > 0 && cur >= lo && tooSoon(in, spec) && !joining(spec, obs, cur) {
			return cur, fmt.Sprintf("%s; waiting %s after the last scale", why, spec.MinScaleInterval)
		}
		return target, why
	case target < cur:
		return scaleDown(in, spec, st, obs, cur, lo, hi, why)
	}
	return cur, why
}

// scaleDown decides how far below cur to go, if at all.
func scaleDown(in Input, spec Spec, st State, obs Observation, cur, lo, hi int32, why string) (int32, string) {
	if cur > hi {
		// Above maxReplicas: the bound applies now, whatever the lag.
		return hi, why
	}
	if spec.MaxLagSeconds > 0 && obs.TimeLagSeconds >= scaleDownLagFraction*spec.MaxLagSeconds {
		return cur, fmt.Sprintf("%s; not scaling down while time lag %s >= %.0f%% of the %s target",
			why, secs(obs.TimeLagSeconds), scaleDownLagFraction*100, secs(spec.MaxLagSeconds))
	}
	window := recommendationSpan(spec)
	recs := st.Recommendations
	windowStart := in.Now.Add(-window)
	// The recommendations must reach back over the whole window, so a
	// restarted operator does not scale down on its first look.
	if len(recs) == 0 || recs[0].Time.After(windowStart) {
		return cur, fmt.Sprintf("%s; holding %d until recommendations cover the %s window", why, cur, window)
	}
	highest := int32(0)
	for _, r := range recs {
		highest = max(highest, r.Replicas)
	}
	stable := clamp(highest, lo, hi)
	if stable >= cur {
		return cur, fmt.Sprintf("%s; holding %d: recommended %d within the last %s", why, cur, highest, window)
	}
	notZero := stable == 0 && !idleThroughWindow(in.History, windowStart)
	if notZero {
		stable = 1
		if stable >= cur {
			return cur, fmt.Sprintf("%s; holding %d until inflow and lag have been zero for %s", why, cur, window)
		}
	}
	if tooSoon(in, spec) {
		return cur, fmt.Sprintf("%s; waiting %s after the last scale", why, spec.MinScaleInterval)
	}
	switch {
	case stable == 0:
		return 0, fmt.Sprintf("no inflow and no lag for %s -> 0 replicas", window)
	case notZero:
		return 1, fmt.Sprintf("%s; inflow or lag seen within %s -> 1 replica", why, window)
	case stable != clamp(st.Memo.Raw, lo, hi):
		return stable, fmt.Sprintf("%s; highest in the last %s -> %s", why, window, replicas(stable))
	}
	return stable, why
}

// recommendationSpan is the window over which recommendations must agree
// before replicas are removed: the stabilization window the user set, or
// LagThreshold's default one (KEDA's HPA has one); TimeLag's plan already
// prices each change, so left to the scaler it asks only that its
// recommendations agree over one minimum interval.
func recommendationSpan(spec Spec) time.Duration {
	if spec.ExplicitStabilization || spec.Policy == PolicyLagThreshold {
		return spec.ScaleDownStabilization
	}
	return min(spec.MinScaleInterval, spec.ScaleDownStabilization)
}

// idleThroughWindow reports whether every observation since start had no
// inflow and no lag. It is the second witness, after the recommendations,
// that scaling to zero loses nothing.
func idleThroughWindow(history []Observation, start time.Time) bool {
	for _, o := range history {
		if o.Time.Before(start) {
			continue
		}
		if o.Stale || o.Missing || o.TotalLag > 0 || o.ProductionRate > 0 {
			return false
		}
	}
	return true
}

// joining reports whether TimeLag may add replicas within the minimum
// interval because the pods of the last change have not joined the group
// yet. LagThreshold keeps KEDA's plain interval.
func joining(spec Spec, obs Observation, cur int32) bool {
	return spec.Policy == PolicyTimeLag && int32(obs.Members) < cur
}

// tooSoon reports whether the last change is within the minimum interval.
func tooSoon(in Input, spec Spec) bool {
	last := in.State.Scale.LastScaleTime
	return !last.IsZero() && in.Now.Sub(last) < spec.MinScaleInterval
}

// appendRecommendation adds r and drops what the window no longer needs:
// entries older than the window, except the newest of them, which says
// what was recommended when the window began.
func appendRecommendation(recs []Recommendation, r Recommendation, window time.Duration) []Recommendation {
	recs = append(recs, r)
	start := r.Time.Add(-window)
	first := 0
	for i := range recs {
		if !recs[i].Time.After(start) {
			first = i
		}
	}
	return append([]Recommendation(nil), recs[first:]...)
}

// lagThreshold is KEDA's Kafka scaler: ceil(lag / lagThreshold) replicas,
// none while the lag is at or below activationLag.
func lagThreshold(spec Spec, o Observation, cur int32) (int32, string) {
	if o.TotalLag <= spec.ActivationLag {
		if cur == 0 {
			return 0, fmt.Sprintf("lag %d <= activation %d -> 0 replicas", o.TotalLag, spec.ActivationLag)
		}
		return 0, fmt.Sprintf("lag %d <= activation %d", o.TotalLag, spec.ActivationLag)
	}
	q := (o.TotalLag + spec.LagThreshold - 1) / spec.LagThreshold
	n := int32(min(q, math.MaxInt32))
	return n, fmt.Sprintf("lag %d / threshold %d per replica -> %s", o.TotalLag, spec.LagThreshold, replicas(n))
}
