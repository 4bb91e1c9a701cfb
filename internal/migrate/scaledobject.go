package migrate

import (
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// mapScaledObject maps the ScaledObject's own fields.
func mapScaledObject(so *ScaledObject, ec *v1alpha1.EventConsumer, own bool, rep *Report) {
	spec := &so.Spec
	s := &ec.Spec.Scaling
	mapPollingInterval(spec, s, rep)
	minR := mapReplicaBounds(spec, s, rep)
	window, outcome, why := scaleDownWindow(spec, minR)
	s.ScaleDownStabilizationSeconds = ptr.To(window)
	rep.add("spec.cooldownPeriod", outcome, "spec.scaling.scaleDownStabilizationSeconds %d: %s", window, why)
	mapAdvanced(spec, own, rep)
	mapDropped(spec, rep)
	mapPause(so, s, rep)
	known := map[string]bool{"scaleTargetRef": true, "pollingInterval": true, "initialCooldownPeriod": true, "cooldownPeriod": true, "idleReplicaCount": true,
		"minReplicaCount": true, "maxReplicaCount": true, "advanced": true, "triggers": true, "fallback": true}
	for _, k := range sortedKeys(so.raw) {
		if !known[k] {
			rep.add("spec."+k, Unsupported, "unknown to migrate; dropped")
		}
	}
}

// mapPollingInterval maps pollingInterval into lagscale's bounds.
func mapPollingInterval(spec *ScaledObjectSpec, s *v1alpha1.ScalingSpec, rep *Report) {
	poll := int32(kedaPollingInterval)
	if spec.PollingInterval != nil {
		poll = *spec.PollingInterval
	}
	switch {
	case poll < 1:
		s.PollIntervalSeconds = ptr.To[int32](1)
		rep.add("spec.pollingInterval", Approximated, "%ds is below lagscale's 1s minimum: spec.scaling.pollIntervalSeconds 1", poll)
	case poll > maxPollInterval:
		s.PollIntervalSeconds = ptr.To[int32](maxPollInterval)
		rep.add("spec.pollingInterval", Approximated, "%ds is above lagscale's %ds maximum: spec.scaling.pollIntervalSeconds %d", poll, maxPollInterval, maxPollInterval)
	default:
		s.PollIntervalSeconds = ptr.To(poll)
		rep.add("spec.pollingInterval", Mapped, "spec.scaling.pollIntervalSeconds %d%s", poll, defaultNote(spec.PollingInterval == nil))
	}
}

// mapReplicaBounds maps minReplicaCount and maxReplicaCount, KEDA's
// defaults written out, and returns the minimum.
func mapReplicaBounds(spec *ScaledObjectSpec, s *v1alpha1.ScalingSpec, rep *Report) int32 {
	minR, maxR := int32(kedaMinReplicas), int32(kedaMaxReplicas)
	if spec.MinReplicaCount != nil {
		minR = *spec.MinReplicaCount
	}
	if spec.MaxReplicaCount != nil {
		maxR = *spec.MaxReplicaCount
	}
	s.MinReplicas, s.MaxReplicas = ptr.To(minR), ptr.To(maxR)
	rep.add("spec.minReplicaCount", Mapped, "spec.scaling.minReplicas %d%s", minR, defaultNote(spec.MinReplicaCount == nil))
	rep.add("spec.maxReplicaCount", Mapped, "spec.scaling.maxReplicas %d%s (still capped at the partition count unless allowIdleConsumers)", maxR, defaultNote(spec.MaxReplicaCount == nil))
	if minR > maxR {
		rep.essential("spec.minReplicaCount", "%d exceeds maxReplicaCount %d", minR, maxR)
	}
	return minR
}

// hpaBehavior is the ScaledObject's HPA behavior, nil when it has none.
func hpaBehavior(spec *ScaledObjectSpec) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	if a := spec.Advanced; a != nil && a.HorizontalPodAutoscalerConfig != nil {
		return a.HorizontalPodAutoscalerConfig.Behavior
	}
	return nil
}

// scaleDownWindow is the one scale-down stabilization window lagscale
// keeps for KEDA's two: the HPA's scale-down stabilization between N and
// 1 replicas, and cooldownPeriod before the last replica goes when
// minReplicaCount is 0. It returns the window, its outcome and why.
func scaleDownWindow(spec *ScaledObjectSpec, minR int32) (int32, Outcome, string) {
	window := int32(hpaScaleDownWindow)
	windowFrom := "the HPA's default scale-down stabilization"
	if b := hpaBehavior(spec); b != nil && b.ScaleDown != nil && b.ScaleDown.StabilizationWindowSeconds != nil {
		window = *b.ScaleDown.StabilizationWindowSeconds
		windowFrom = "behavior.scaleDown.stabilizationWindowSeconds"
	}
	cooldown := int32(kedaCooldownPeriod)
	if spec.CooldownPeriod != nil {
		cooldown = *spec.CooldownPeriod
	}
	outcome, why := Mapped, fmt.Sprintf("from %s (%ds)", windowFrom, window)
	switch {
	case minR > 0:
		why += fmt.Sprintf("; cooldownPeriod (%ds) only delays scaling to zero, which minReplicaCount %d rules out", cooldown, minR)
	case cooldown != window:
		outcome = Approximated
		why = fmt.Sprintf("KEDA waits %ds (%s) before removing replicas down to 1 and cooldownPeriod %ds before going to zero; lagscale has one window for every scale-down, so the longer is kept", window, windowFrom, cooldown)
		window = max(window, cooldown)
	default:
		why += fmt.Sprintf(", equal to cooldownPeriod %ds", cooldown)
	}
	if window > maxStabilization {
		window = maxStabilization
		outcome = Approximated
		why += fmt.Sprintf(", capped at lagscale's %ds maximum", maxStabilization)
	}
	return window, outcome, why
}

// mapAdvanced reports the HPA behavior and the advanced settings, which
// lagscale's own scaling replaces.
func mapAdvanced(spec *ScaledObjectSpec, own bool, rep *Report) {
	if behavior := hpaBehavior(spec); behavior != nil {
		if behavior.ScaleUp != nil {
			rep.add("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp", Approximated, "lagscale scales up at once to what the lag needs, in partition-aware steps; HPA scale-up policies and windows are dropped")
		}
		if behavior.ScaleDown != nil && (len(behavior.ScaleDown.Policies) > 0 || behavior.ScaleDown.SelectPolicy != nil) {
			rep.add("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies", Approximated, "lagscale removes replicas once the recommendation stayed lower for the whole window, in partition-aware steps; rate policies are dropped")
		}
	}
	a := spec.Advanced
	if a == nil {
		return
	}
	switch {
	case a.RestoreToOriginalReplicaCount && own:
		rep.add("spec.advanced.restoreToOriginalReplicaCount", Unsupported, "the EventConsumer owns its Deployment: deleting it deletes the Deployment")
	case a.RestoreToOriginalReplicaCount:
		rep.add("spec.advanced.restoreToOriginalReplicaCount", Approximated, "deleting the EventConsumer leaves the workload at its current replicas; it does not restore the count from before")
	}
	if a.ScalingModifiers.Formula != "" {
		rep.essential("spec.advanced.scalingModifiers", "formulas over several metrics are not supported: lagscale scales on one group's lag")
	}
	if a.HorizontalPodAutoscalerConfig != nil && a.HorizontalPodAutoscalerConfig.Name != "" {
		rep.add("spec.advanced.horizontalPodAutoscalerConfig.name", Mapped, "not needed: lagscale sets replicas itself, with no HPA")
	}
}

// mapDropped reports the fields lagscale has nothing for.
func mapDropped(spec *ScaledObjectSpec, rep *Report) {
	if spec.IdleReplicaCount != nil {
		rep.add("spec.idleReplicaCount", Unsupported, "lagscale scales between minReplicas and maxReplicas only")
	}
	if spec.InitialCooldownPeriod != nil {
		rep.add("spec.initialCooldownPeriod", Unsupported, "lagscale applies its stabilization window from the start")
	}
	if spec.Fallback != nil {
		rep.add("spec.fallback", Approximated, "when Kafka cannot be read lagscale keeps the current replicas and never scales down; it does not move to fallback.replicas %d", spec.Fallback.Replicas)
	}
}

// mapPause maps KEDA's pause annotations to spec.scaling.paused.
func mapPause(so *ScaledObject, s *v1alpha1.ScalingSpec, rep *Report) {
	if v, ok := so.Annotations["autoscaling.keda.sh/paused"]; ok {
		if b, _ := parseBool(v); b {
			s.Paused = true
			rep.add("metadata.annotations[autoscaling.keda.sh/paused]", Mapped, "spec.scaling.paused true")
		}
	}
	if v, ok := so.Annotations["autoscaling.keda.sh/paused-replicas"]; ok {
		s.Paused = true
		rep.add("metadata.annotations[autoscaling.keda.sh/paused-replicas]", Approximated, "spec.scaling.paused true freezes replicas where they are, not at %s", v)
	}
}

func defaultNote(absent bool) string {
	if absent {
		return " (KEDA's default, written out)"
	}
	return ""
}
