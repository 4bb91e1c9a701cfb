package migrate

import (
	"encoding/json"
	"fmt"
	"testing"

	"k8s.io/utils/ptr"
)

func TestScaleDownWindow(t *testing.T) {
	withWindow := func(s int32) *Advanced {
		a := &Advanced{}
		if err := json.Unmarshal(fmt.Appendf(nil, `{"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": %d}}}}`, s), a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name        string
		spec        ScaledObjectSpec
		minR        int32
		wantWindow  int32
		wantOutcome Outcome
	}{
		{name: "KEDA's defaults agree", wantWindow: 300, wantOutcome: Mapped},
		{name: "a longer cooldown is kept", spec: ScaledObjectSpec{CooldownPeriod: ptr.To[int32](600)}, wantWindow: 600, wantOutcome: Approximated},
		{name: "a longer HPA window is kept", spec: ScaledObjectSpec{CooldownPeriod: ptr.To[int32](60), Advanced: withWindow(900)}, wantWindow: 900, wantOutcome: Approximated},
		{name: "cooldown does not apply above zero", spec: ScaledObjectSpec{CooldownPeriod: ptr.To[int32](600)}, minR: 2, wantWindow: 300, wantOutcome: Mapped},
		{name: "capped at lagscale's maximum", spec: ScaledObjectSpec{Advanced: withWindow(7200)}, minR: 1, wantWindow: maxStabilization, wantOutcome: Approximated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, o, why := scaleDownWindow(&tt.spec, tt.minR)
			if w != tt.wantWindow || o != tt.wantOutcome || why == "" {
				t.Errorf("scaleDownWindow = %d, %s, %q; want %d, %s", w, o, why, tt.wantWindow, tt.wantOutcome)
			}
		})
	}
}
