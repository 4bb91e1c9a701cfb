package controllers

import (
	"github.com/lagscale/lagscale/pkg/contract"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"

	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/testenv"
)

// validConsumer is a minimal EventConsumer manifest the API server accepts;
// each case below breaks one thing.
func validConsumer(name string) map[string]any {
	return map[string]any{
		"apiVersion": "lagscale.dev/v1alpha1",
		"kind":       "EventConsumer",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"topics":        []any{"orders"},
			"consumerGroup": "orders-handler",
			"kafka":         map[string]any{"bootstrapServers": []any{"kafka:9092"}},
			"handler":       map[string]any{"image": "handler:1"},
		},
	}
}

func spec(m map[string]any) map[string]any { return m["spec"].(map[string]any) }

func scaling(m map[string]any) map[string]any {
	s, ok := spec(m)["scaling"].(map[string]any)
	if !ok {
		s = map[string]any{}
		spec(m)["scaling"] = s
	}
	return s
}

func TestInvalidManifestsAreRejected(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	manyTopics := make([]any, 17)
	for i := range manyTopics {
		manyTopics[i] = fmt.Sprintf("t%d", i)
	}
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"min above max", func(m map[string]any) { scaling(m)["minReplicas"] = 5; scaling(m)["maxReplicas"] = 2 }, "minReplicas must not exceed maxReplicas"},
		{"no topics", func(m map[string]any) { spec(m)["topics"] = []any{} }, "spec.topics: Invalid value"},
		{"topics missing", func(m map[string]any) { delete(spec(m), "topics") }, "set spec.topics: only groupType Streams reads its topics from the topology"},
		{"Streams without topics scaling to zero", func(m map[string]any) {
			spec(m)["groupType"] = "Streams"
			delete(spec(m), "topics")
			scaling(m)["minReplicas"] = 0
		}, "set scaling.minReplicas to 1 or more, or set spec.topics: a streams group with no member has no topology to read"},
		{"bad topic name", func(m map[string]any) { spec(m)["topics"] = []any{"orders", "has space"} }, "each topic must be a valid Kafka topic name"},
		{"topic named dot-dot", func(m map[string]any) { spec(m)["topics"] = []any{".."} }, "each topic must be a valid Kafka topic name"},
		{"17 topics", func(m map[string]any) { spec(m)["topics"] = manyTopics }, "must have at most 16 items"},
		{"no group", func(m map[string]any) { delete(spec(m), "consumerGroup") }, "spec.consumerGroup: Required value"},
		{"both bootstrapServers and clusterRef", func(m map[string]any) {
			spec(m)["kafka"] = map[string]any{"bootstrapServers": []any{"k:9092"}, "clusterRef": map[string]any{"name": "main"}}
		}, "set exactly one of kafka.bootstrapServers or kafka.clusterRef"},
		{"neither bootstrapServers nor clusterRef", func(m map[string]any) { spec(m)["kafka"] = map[string]any{} }, "set exactly one of kafka.bootstrapServers or kafka.clusterRef"},
		{"bootstrap server without port", func(m map[string]any) { spec(m)["kafka"] = map[string]any{"bootstrapServers": []any{"kafka"}} }, "spec.kafka.bootstrapServers[0]"},
		{"no image and no template", func(m map[string]any) { spec(m)["handler"] = map[string]any{"args": []any{"x"}} }, "set spec.handler.image, or give spec.template"},
		{"lagThreshold 0", func(m map[string]any) { scaling(m)["lagThreshold"] = 0 }, "lagThreshold must be greater than 0"},
		{"maxLagSeconds 0", func(m map[string]any) { scaling(m)["maxLagSeconds"] = 0 }, "maxLagSeconds must be greater than 0"},
		{"pollIntervalSeconds 0", func(m map[string]any) { scaling(m)["pollIntervalSeconds"] = 0 }, "pollIntervalSeconds must be between 1 and 300"},
		{"pollIntervalSeconds 301", func(m map[string]any) { scaling(m)["pollIntervalSeconds"] = 301 }, "pollIntervalSeconds must be between 1 and 300"},
		{"unknown policy", func(m map[string]any) { scaling(m)["policy"] = "CPU" }, `spec.scaling.policy: Unsupported value: "CPU": supported values: "TimeLag", "LagThreshold"`},
		{"unknown SASL mechanism", func(m map[string]any) {
			spec(m)["kafka"] = map[string]any{"bootstrapServers": []any{"k:9092"}, "sasl": map[string]any{"mechanism": "GSSAPI", "secretRef": map[string]any{"name": "s"}}}
		}, `spec.kafka.sasl.mechanism: Unsupported value: "GSSAPI"`},
		{"tls with a certificate but no key", func(m map[string]any) {
			spec(m)["kafka"] = map[string]any{"bootstrapServers": []any{"k:9092"}, "tls": map[string]any{"certSecretRef": map[string]any{"name": "c", "key": "tls.crt"}}}
		}, "tls.certSecretRef and tls.keySecretRef must be set together"},
		{"unknown offset reset policy", func(m map[string]any) { scaling(m)["offsetResetPolicy"] = "none" }, `spec.scaling.offsetResetPolicy: Unsupported value: "none"`},
		{"negative minReplicas", func(m map[string]any) { scaling(m)["minReplicas"] = -1 }, "spec.scaling.minReplicas: Invalid value: -1"},
		{"unknown groupType", func(m map[string]any) { spec(m)["groupType"] = "KStreams" }, `spec.groupType: Unsupported value: "KStreams": supported values: "Classic", "Consumer", "Share", "Streams"`},
		{"Share without maxReplicas", func(m map[string]any) { spec(m)["groupType"] = "Share" }, "set scaling.maxReplicas for groupType Share: a share group can use more members than partitions, so the partition count does not bound it"},
		{"negative burstMemorySeconds", func(m map[string]any) { scaling(m)["burstMemorySeconds"] = -1 }, "spec.scaling.burstMemorySeconds: Invalid value: -1"},
		{"handler.env overrides KAFKA_TOPICS", func(m map[string]any) {
			spec(m)["handler"] = map[string]any{"image": "handler:1", "env": []any{map[string]any{"name": "DEBUG", "value": "1"}, map[string]any{"name": "KAFKA_TOPICS", "value": "other"}}}
		}, "handler.env must not set KAFKA_TOPICS: lagscale injects it from the spec"},
		{"template handler container overrides KAFKA_CONSUMER_GROUP", func(m map[string]any) {
			spec(m)["template"] = map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "sidecar", "image": "proxy:1"},
				map[string]any{"name": "handler", "env": []any{map[string]any{"name": "KAFKA_CONSUMER_GROUP", "value": "other"}}},
			}}}
		}, "the handler container of spec.template must not set KAFKA_CONSUMER_GROUP in env"},
		{"template first container overrides KAFKA_BOOTSTRAP_SERVERS", func(m map[string]any) {
			spec(m)["template"] = map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "app", "env": []any{map[string]any{"name": "KAFKA_BOOTSTRAP_SERVERS", "value": "elsewhere:9092"}}},
			}}}
		}, "the handler container of spec.template must not set KAFKA_BOOTSTRAP_SERVERS in env"},
	}
	if len(tests) < 12 {
		t.Fatalf("the issue asks for at least 12 cases, have %d", len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireRefused(t, ns, fmt.Sprintf("bad-%d", i), tt.mutate, tt.want)
		})
	}

	// The valid manifest itself is accepted, so the cases above fail for
	// their own reason.
	ok := &unstructured.Unstructured{Object: validConsumer("good")}
	ok.SetNamespace(ns)
	if err := env.Client.Create(ctx, ok); err != nil {
		t.Fatalf("valid manifest rejected: %v", err)
	}

	// A streams group may leave spec.topics out (the topology names them)
	// as long as it never scales to zero, and may give them and scale to
	// zero.
	for name, mutate := range map[string]func(m map[string]any){
		"streams-no-topics": func(m map[string]any) { delete(spec(m), "topics") },
		"streams-no-topics-min-1": func(m map[string]any) {
			delete(spec(m), "topics")
			scaling(m)["minReplicas"] = 1
		},
		"streams-topics-min-0": func(m map[string]any) { scaling(m)["minReplicas"] = 0 },
	} {
		m := validConsumer(name)
		spec(m)["groupType"] = "Streams"
		mutate(m)
		u := &unstructured.Unstructured{Object: m}
		u.SetNamespace(ns)
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("%s: valid streams manifest rejected: %v", name, err)
		}
	}

	// consumerGroup is immutable.
	spec(ok.Object)["consumerGroup"] = "another"
	err := env.Client.Update(ctx, ok)
	if err == nil || !strings.Contains(err.Error(), "consumerGroup is immutable") {
		t.Fatalf("changing consumerGroup: %v", err)
	}
}

// userSettable are the contract's variables that the operator does not
// inject: a handler sets them in its own env to opt out of a default.
var userSettable = map[string]bool{contract.EnvIsolationLevel: true}

// contractNames returns the variables of pkg/contract/contract.go that the
// operator injects, read from the source so that a new one without a CEL
// rule fails TestContractEnvCannotBeOverridden.
func contractNames(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(testenv.Root(), "pkg", "contract", "contract.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Env") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					if !userSettable[v] {
						names = append(names, v)
					}
				}
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d contract variables in pkg/contract/contract.go: %v", len(names), names)
	}
	return names
}

// TestContractEnvCannotBeOverridden sends every variable of the handler
// contract in handler.env and in the template's handler container: the API
// server must refuse each, naming it. A sidecar may still set them, since
// only the handler container receives the contract.
func TestContractEnvCannotBeOverridden(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	for i, name := range contractNames(t) {
		t.Run(name, func(t *testing.T) {
			m := validConsumer(fmt.Sprintf("env-%d", i))
			spec(m)["handler"] = map[string]any{"image": "handler:1", "env": []any{map[string]any{"name": name, "value": "x"}}}
			u := &unstructured.Unstructured{Object: m}
			u.SetNamespace(ns)
			err := env.Client.Create(ctx, u)
			if err == nil || !strings.Contains(err.Error(), "handler.env must not set "+name+":") {
				t.Fatalf("handler.env with %s: %v", name, err)
			}

			m = validConsumer(fmt.Sprintf("tmpl-%d", i))
			spec(m)["template"] = map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "handler", "env": []any{map[string]any{"name": name, "value": "x"}}},
			}}}
			u = &unstructured.Unstructured{Object: m}
			u.SetNamespace(ns)
			err = env.Client.Create(ctx, u)
			if err == nil || !strings.Contains(err.Error(), "must not set "+name+" in env") {
				t.Fatalf("template env with %s: %v", name, err)
			}
		})
	}

	for name := range userSettable {
		m := validConsumer("opt-out-" + strings.ToLower(strings.ReplaceAll(name, "_", "-")))
		spec(m)["handler"] = map[string]any{"image": "handler:1", "env": []any{map[string]any{"name": name, "value": "read_uncommitted"}}}
		u := &unstructured.Unstructured{Object: m}
		u.SetNamespace(ns)
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("handler.env with the opt-out %s was refused: %v", name, err)
		}
	}

	m := validConsumer("sidecar-env")
	spec(m)["template"] = map[string]any{"spec": map[string]any{"containers": []any{
		map[string]any{"name": "handler", "env": []any{map[string]any{"name": "DEBUG", "value": "1"}}},
		map[string]any{"name": "proxy", "image": "proxy:1", "env": []any{map[string]any{"name": "KAFKA_BOOTSTRAP_SERVERS", "value": "upstream:9092"}}},
	}}}
	u := &unstructured.Unstructured{Object: m}
	u.SetNamespace(ns)
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatalf("a sidecar's own env was refused: %v", err)
	}
}

// TestGroupTypeTransitions asks the API server which changes of
// spec.groupType it allows: Classic and Consumer both ways (Kafka converts
// such a group online), nothing to or from Share or Streams (a share or
// streams group is another group), each refusal with its message.
func TestGroupTypeTransitions(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		from, to string // "" leaves the field out, so the default applies
		want     string // "" means allowed
	}{
		{"Classic to Consumer", "Classic", "Consumer", ""},
		{"Consumer to Classic", "Consumer", "Classic", ""},
		{"default to Consumer", "", "Consumer", ""},
		{"Classic to Share", "Classic", "Share", "groupType cannot change to Share: a share group is another group than the consumer group, create a new EventConsumer with groupType Share"},
		{"default to Share", "", "Share", "groupType cannot change to Share"},
		{"Consumer to Share", "Consumer", "Share", "groupType cannot change to Share"},
		{"Share to Classic", "Share", "Classic", "groupType cannot change from Share: a share group is another group than a consumer group, create a new EventConsumer for the Classic or Consumer group"},
		{"Share to Consumer", "Share", "Consumer", "groupType cannot change from Share"},
		{"Share to default", "Share", "", "groupType cannot change from Share"},
		{"Share stays Share", "Share", "Share", ""},
		{"Classic to Streams", "Classic", "Streams", "groupType cannot change to Streams: a streams group is another group than a consumer or share group, create a new EventConsumer with groupType Streams"},
		{"default to Streams", "", "Streams", "groupType cannot change to Streams"},
		{"Share to Streams", "Share", "Streams", "groupType cannot change to Streams"},
		{"Streams to Consumer", "Streams", "Consumer", "groupType cannot change from Streams: a streams group is another group than a consumer or share group, create a new EventConsumer for the other group type"},
		{"Streams to default", "Streams", "", "groupType cannot change from Streams"},
		{"Streams to Share", "Streams", "Share", "groupType cannot change from Streams"},
		{"Streams stays Streams", "Streams", "Streams", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validConsumer(fmt.Sprintf("gt-%d", i))
			if tt.from != "" {
				spec(m)["groupType"] = tt.from
			}
			scaling(m)["maxReplicas"] = 8 // required for Share
			u := &unstructured.Unstructured{Object: m}
			u.SetNamespace(ns)
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatalf("create with groupType %q: %v", tt.from, err)
			}
			if tt.to == "" {
				delete(spec(u.Object), "groupType")
			} else {
				spec(u.Object)["groupType"] = tt.to
			}
			// A label change as well, so the update is never a no-op the
			// API server would skip validating.
			u.SetLabels(map[string]string{"case": fmt.Sprint(i)})
			err := env.Client.Update(ctx, u)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("change %q -> %q refused: %v", tt.from, tt.to, err)
			case tt.want != "" && err == nil:
				t.Fatalf("change %q -> %q accepted", tt.from, tt.to)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("message %q does not contain %q", err.Error(), tt.want)
			}
		})
	}
}

// TestGroupTypeDefault checks that the API server defaults spec.groupType
// to v1alpha1.DefaultGroupType, the constant the controllers use.
func TestGroupTypeDefault(t *testing.T) {
	ns := namespace(t)
	u := &unstructured.Unstructured{Object: validConsumer("gt-default")}
	u.SetNamespace(ns)
	if err := env.Client.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedString(u.Object, "spec", "groupType")
	if got != string(v1alpha1.DefaultGroupType) {
		t.Fatalf("defaulted groupType %q, the constant says %q", got, v1alpha1.DefaultGroupType)
	}

	// kubectl get -o wide shows the type: a printer column of priority 1
	// in the CRD the API server serves.
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "eventconsumers.lagscale.dev"}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	found := false
	for _, v := range versions {
		cols, _, _ := unstructured.NestedSlice(v.(map[string]any), "additionalPrinterColumns")
		for _, c := range cols {
			col := c.(map[string]any)
			if col["jsonPath"] == ".spec.groupType" {
				found = true
				if col["name"] != "Type" || col["priority"] != int64(1) {
					t.Errorf("groupType column %v, want name Type at priority 1", col)
				}
			}
		}
	}
	if !found {
		t.Errorf("no printer column for .spec.groupType")
	}
}

// requireRefused creates the valid consumer name in ns, changed by mutate,
// and requires the API server to refuse it with a message containing want.
func requireRefused(t *testing.T, ns, name string, mutate func(map[string]any), want string) {
	t.Helper()
	m := validConsumer(name)
	mutate(m)
	u := &unstructured.Unstructured{Object: m}
	u.SetNamespace(ns)
	err := env.Client.Create(context.Background(), u)
	if err == nil {
		t.Fatalf("the API server accepted an invalid manifest")
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q does not contain %q", err.Error(), want)
	}
}
