package sim

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// ParseConsumer reads an EventConsumer manifest (YAML or JSON). Unknown
// fields are an error, as a strict kubectl apply makes them: a typo in a
// field name would otherwise simulate the default silently.
func ParseConsumer(data []byte) (*v1alpha1.EventConsumer, error) {
	ec := &v1alpha1.EventConsumer{}
	if err := yaml.UnmarshalStrict(data, ec); err != nil {
		return nil, fmt.Errorf("parsing EventConsumer: %w", err)
	}
	if ec.Kind != "EventConsumer" {
		return nil, fmt.Errorf("manifest kind is %q, want EventConsumer", ec.Kind)
	}
	if mn, mx := ec.Spec.Scaling.MinReplicas, ec.Spec.Scaling.MaxReplicas; mn != nil && mx != nil && *mn > *mx {
		return nil, fmt.Errorf("spec.scaling: minReplicas %d must not exceed maxReplicas %d", *mn, *mx)
	}
	return ec, nil
}

// Flags says which of the CLI's flags that mean the same as a manifest
// field the user set on the command line.
type Flags struct {
	// SLO is --slo.
	SLO bool
}

// WithConsumer is cfg running lagscale with ec's spec.scaling and
// groupType, with the defaults the API server applies (the constants of
// api/v1alpha1) in the fields ec leaves empty. Precedence:
//   - the true capacity is always cfg.Capacity;
//   - the SLO scored is maxLagSeconds unless --slo was set (flags.SLO);
//   - a field set in the manifest wins over the flag that means the same
//     thing: pollIntervalSeconds over --poll, groupType over --share,
//     maxReplicas over --share-max-replicas; a field the manifest leaves
//     empty takes the flag's value;
//   - cfg.Prior applies only when the manifest sets no throughputPerReplica.
func WithConsumer(cfg Config, ec *v1alpha1.EventConsumer, flags Flags) Config {
	sc := ec.Spec.Scaling.DeepCopy()
	DefaultScaling(sc)
	if !flags.SLO {
		cfg.SLO = float64(*sc.MaxLagSeconds)
	}
	if p := ec.Spec.Scaling.PollIntervalSeconds; p != nil && *p > 0 {
		cfg.Poll = int(*p)
	}
	if cfg.Poll > 0 {
		sc.PollIntervalSeconds = ptr(int32(cfg.Poll))
	}
	switch ec.Spec.GroupType {
	case "":
		// Left to the flag.
	case v1alpha1.GroupTypeShare:
		cfg.Share = true
	default:
		// Classic, and Consumer and Streams groups, which the simulator
		// models as classic groups (partition ownership, a pause per
		// membership change).
		cfg.Share = false
	}
	if ec.Spec.Scaling.MaxReplicas != nil {
		cfg.ShareMaxReplicas = int(*ec.Spec.Scaling.MaxReplicas)
	} else if cfg.Share && cfg.ShareMaxReplicas > 0 {
		sc.MaxReplicas = ptr(int32(cfg.ShareMaxReplicas))
	}
	cfg.Scaling = sc
	return cfg
}

// DefaultScaling fills the fields of sc that the API server defaults
// (kubebuilder:default), with the constants of api/v1alpha1 that a test
// holds equal to the generated CRD.
func DefaultScaling(sc *v1alpha1.ScalingSpec) {
	fill := func(p **int32, v int32) {
		if *p == nil {
			*p = ptr(v)
		}
	}
	fill(&sc.MinReplicas, v1alpha1.DefaultMinReplicas)
	fill(&sc.MaxLagSeconds, v1alpha1.DefaultMaxLagSeconds)
	fill(&sc.ScaleDownStabilizationSeconds, v1alpha1.DefaultScaleDownStabilizationSeconds)
	fill(&sc.BurstMemorySeconds, v1alpha1.DefaultBurstMemorySeconds)
	fill(&sc.PollIntervalSeconds, v1alpha1.DefaultPollIntervalSeconds)
	if sc.Policy == "" {
		sc.Policy = v1alpha1.DefaultPolicy
	}
	if sc.LagThreshold == nil {
		sc.LagThreshold = ptr(v1alpha1.DefaultLagThreshold)
	}
	if sc.ActivationLag == nil {
		sc.ActivationLag = ptr(v1alpha1.DefaultActivationLag)
	}
	if sc.OffsetResetPolicy == "" {
		sc.OffsetResetPolicy = v1alpha1.DefaultOffsetResetPolicy
	}
}
