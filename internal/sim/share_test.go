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
