package sim

import (
	"testing"

	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/lag"
)

// TestRateWindowMatchesTheLagEngine: the autoscaler takes a capacity
// sample only once a saturated group has filled the lag engine's rate
// window, so it must know that window's length in polls.
func TestRateWindowMatchesTheLagEngine(t *testing.T) {
	if autoscale.RateWindowPolls != lag.DefaultHealthWindow {
		t.Fatalf("autoscale.RateWindowPolls %d, lag.DefaultHealthWindow %d: keep them equal", autoscale.RateWindowPolls, lag.DefaultHealthWindow)
	}
}
