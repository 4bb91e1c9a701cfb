package sim

import "testing"

// TestShareModeOnHotPartition shows what a share group buys on the
// hot-partition scenario: with every member consuming every partition and
// no rebalance pause, lagscale meets the SLO at least as often as with a
// classic group, on fewer replica-seconds, and never pauses.
func TestShareModeOnHotPartition(t *testing.T) {
	w, err := Scenario("hot-partition", ScenarioParams{Partitions: 24, Capacity: 100, Seed: 1, Duration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	classicCfg := testConfig()
	shareCfg := classicCfg
	shareCfg.Share, shareCfg.ShareMaxReplicas = true, 48
	classic := Run(classicCfg, w).Metrics["lagscale"]
	share := Run(shareCfg, w).Metrics["lagscale"]
	t.Logf("classic: slo %.4f p99 %.0fs replica-s %d rebalance-s %d; share: slo %.4f p99 %.0fs replica-s %d rebalance-s %d",
		classic.SLOAttainment, classic.P99LagSeconds, classic.ReplicaSeconds, classic.RebalanceSeconds,
		share.SLOAttainment, share.P99LagSeconds, share.ReplicaSeconds, share.RebalanceSeconds)
	if share.RebalanceSeconds != 0 {
		t.Errorf("share mode paused %d s for rebalances, want 0", share.RebalanceSeconds)
	}
	if share.SLOAttainment < classic.SLOAttainment {
		t.Errorf("share SLO attainment %.4f below classic %.4f", share.SLOAttainment, classic.SLOAttainment)
	}
	if share.ReplicaSeconds >= classic.ReplicaSeconds {
		t.Errorf("share used %d replica-seconds, classic %d: a shared hot partition should need fewer", share.ReplicaSeconds, classic.ReplicaSeconds)
	}
}

// ShareMaxReplicas 0 leaves lagscale unbounded in share mode; it once
// became maxReplicas 0, which the bounds raise to minReplicas: one replica
// for the whole run.
func TestShareMaxReplicasZeroIsUnbounded(t *testing.T) {
	tests := []struct {
		name string
		max  int
		want *int32
	}{
		{"zero", 0, nil},
		{"set", 48, ptr(int32(48))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Share, cfg.ShareMaxReplicas = true, tc.max
			got := LagscaleSpec(cfg).MaxReplicas
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("maxReplicas %v, want %v", deref(got), deref(tc.want))
			}
		})
	}
	w, err := Scenario("hot-partition", ScenarioParams{Partitions: 24, Capacity: 100, Seed: 1, Duration: 1800})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Share = true
	if m := Run(cfg, w).Metrics[PolicyLagscale]; m.SLOAttainment < attainmentTarget {
		t.Errorf("share mode without maxReplicas: attainment %.4f, %d replica-s", m.SLOAttainment, m.ReplicaSeconds)
	}
}

func deref(p *int32) any {
	if p == nil {
		return "none"
	}
	return *p
}
