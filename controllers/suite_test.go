package controllers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/testenv"
)

// env is the control plane shared by the package's tests.
var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if os.Getenv("LAGSCALE_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	}
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the test control plane: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop control plane: %v\n", err)
	}
	os.Exit(code)
}

// operator is a running manager with the EventConsumer reconciler.
type operator struct {
	cancel context.CancelFunc
	done   chan struct{}
	rec    *EventConsumerReconciler
}

// startOperator runs the reconcilers as the RBAC-limited operator user
// until the test ends or stop is called.
func startOperator(t *testing.T, configure func(*EventConsumerReconciler)) *operator {
	t.Helper()
	op, _ := startManager(t, nil, configure)
	return op
}

// startManager runs a manager with the EventConsumer and KafkaCluster
// reconcilers as the RBAC-limited operator user, with the options the
// operator uses and what options adds (leader election, say), until the
// test ends or stop is called. It returns the manager too.
func startManager(t *testing.T, options func(*ctrl.Options), configure func(*EventConsumerReconciler)) (*operator, ctrl.Manager) {
	t.Helper()
	o := ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptrTo(true)},
		Cache:                  CacheOptions(nil),
		Client:                 ClientOptions(),
	}
	if options != nil {
		options(&o)
	}
	mgr, err := ctrl.NewManager(env.Operator, o)
	if err != nil {
		t.Fatal(err)
	}
	rec := &EventConsumerReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("lagscale")}
	if configure != nil {
		configure(rec)
	}
	if err := rec.SetupWithManager(mgr, controller.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := (&KafkaClusterReconciler{Client: mgr.GetClient(), Lag: rec.Lag}).SetupWithManager(mgr, controller.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{cancel: cancel, done: make(chan struct{}), rec: rec}
	go func() {
		defer close(op.done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(op.stop)
	return op, mgr
}

func (o *operator) stop() {
	o.cancel()
	<-o.done
}

// eventually polls cond until it returns nil or the wait ends.
func eventually(t *testing.T, wait time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, wait, cond)
}

// namespace creates a fresh namespace for one test.
var nsMu sync.Mutex
var nsCount int

func namespace(t *testing.T) string {
	t.Helper()
	nsMu.Lock()
	nsCount++
	name := fmt.Sprintf("t%d-%d", nsCount, time.Now().UnixNano()%100000)
	nsMu.Unlock()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

// readManifests decodes every object of a YAML file into unstructured
// objects, the way kubectl apply reads it.
func readManifests(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), path))
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		obj := map[string]any{}
		if err := utilyaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// createConsumer creates an EventConsumer with spec in namespace ns and
// fails the test if the API server refuses it.
func createConsumer(t *testing.T, ns, name string, spec v1alpha1.EventConsumerSpec) *v1alpha1.EventConsumer {
	t.Helper()
	ec := &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := env.Client.Create(context.Background(), ec); err != nil {
		t.Fatalf("create EventConsumer %s/%s: %v", ns, name, err)
	}
	return ec
}
