package v1alpha1_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestCRDDefaultsAreTheConstants reads the generated CRD and checks that
// every default the API server fills into spec.scaling is the constant the
// controller and the simulator use.
func TestCRDDefaultsAreTheConstants(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "lagscale.dev_eventconsumers.yaml"))
	if err != nil {
		t.Fatalf("read the generated CRD (make manifests writes it): %v", err)
	}
	// The schema as plain JSON: the CRD types would make the API module
	// import apiextensions for one test.
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema schema `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%d versions, want 1", len(crd.Spec.Versions))
	}
	scaling := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["scaling"].Properties
	want := map[string]any{
		"minReplicas":         v1alpha1.DefaultMinReplicas,
		"policy":              v1alpha1.DefaultPolicy,
		"maxLagSeconds":       v1alpha1.DefaultMaxLagSeconds,
		"lagThreshold":        v1alpha1.DefaultLagThreshold,
		"activationLag":       v1alpha1.DefaultActivationLag,
		"burstMemorySeconds":  v1alpha1.DefaultBurstMemorySeconds,
		"pollIntervalSeconds": v1alpha1.DefaultPollIntervalSeconds,
		"offsetResetPolicy":   v1alpha1.DefaultOffsetResetPolicy,
		"allowIdleConsumers":  false,
		"paused":              false,
	}
	for field, v := range want {
		prop, ok := scaling[field]
		if !ok {
			t.Errorf("spec.scaling.%s: not in the CRD", field)
			continue
		}
		if len(prop.Default) == 0 {
			t.Errorf("spec.scaling.%s: the CRD has no default, the constant says %v", field, v)
			continue
		}
		exp, _ := json.Marshal(v)
		if string(prop.Default) != string(exp) {
			t.Errorf("spec.scaling.%s: CRD default %s, constant %s", field, prop.Default, exp)
		}
	}
	// Fields left unset on purpose: unset means the scaler chooses, and a
	// value in the manifest is the user's promise. A CRD default would set
	// it on every object and make the scaler's choice impossible.
	for _, field := range []string{"scaleDownStabilizationSeconds"} {
		if prop, ok := scaling[field]; !ok || len(prop.Default) > 0 {
			t.Errorf("spec.scaling.%s: want in the CRD without a default, got present=%v default=%s", field, ok, prop.Default)
		}
	}
	for field, prop := range scaling {
		if _, ok := want[field]; !ok && len(prop.Default) > 0 {
			t.Errorf("spec.scaling.%s has a default (%s) without a constant in api/v1alpha1", field, prop.Default)
		}
	}
}

// schema is the part of an OpenAPI schema the test reads.
type schema struct {
	Properties map[string]schema `json:"properties"`
	Default    json.RawMessage   `json:"default"`
}
