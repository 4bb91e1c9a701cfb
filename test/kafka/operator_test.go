//go:build kafka

package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/operator"
	"github.com/lagscale/lagscale/internal/testenv"
	"github.com/lagscale/lagscale/internal/testkit"
)

// operatorLog collects everything the operator logs, to look for
// credentials in it.
var (
	operatorLog     syncBuffer
	operatorLogOnce sync.Once
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOperatorOnApacheKafka runs the assembled operator against the real
// API server (envtest) and Apache Kafka's SASL_SSL listener: a KafkaCluster
// with SCRAM-SHA-512 and a CA Secret connects and scales from lag; a wrong
// password gives KafkaReachable=False without the password appearing in
// status, events or logs; and a broker stopped for 30 s gives
// KafkaReachable=False with the replicas held, then recovers without an
// operator restart.
func TestOperatorOnApacheKafka(t *testing.T) {
	f := startApacheOperator(t)
	t.Run("SASL_SSL with SCRAM-SHA-512 and a CA Secret connects", f.connects)
	t.Run("a wrong password is KafkaReachable=False and appears nowhere", f.hidesWrongPassword)
	t.Run("broker stopped 30s: KafkaReachable=False, replicas held, recovery without restart", f.holdsThroughOutage)
}

// apacheOperator is TestOperatorOnApacheKafka's fixture: Apache Kafka with
// a SASL_SSL listener, the operator, and two consumers through two
// KafkaClusters, one with the right password and one with a wrong one.
type apacheOperator struct {
	a           *testkit.Apache
	c           client.Client
	ns          string
	badPassword string
	good, bad   *v1alpha1.EventConsumer
}

// startApacheOperator starts Apache Kafka with 21 records on three
// partitions of orders, the operator, and the Secrets, KafkaClusters and
// EventConsumers of the test.
func startApacheOperator(t *testing.T) *apacheOperator {
	setOperatorLogger()
	a := testkit.StartApache(t, testkit.KafkaVersion)
	testkit.CreateTopics(t, a, 3, "orders")
	produce(t, a, "orders", 3, 7)

	c := startOperatorWithControlPlane(t)
	ns := "apache"
	f := &apacheOperator{a: a, c: c, ns: ns, badPassword: "wrong-" + a.Password[:8] + "-pw"}
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-ca"}, Data: map[string][]byte{"ca.crt": a.CAPEM}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-user"}, Data: map[string][]byte{"username": []byte(a.User), "password": []byte(a.Password)}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-bad-user"}, Data: map[string][]byte{"username": []byte(a.User), "password": []byte(f.badPassword)}})
	mustCreate(t, c, f.cluster("apache", "kafka-user"))
	mustCreate(t, c, f.cluster("apache-bad", "kafka-bad-user"))
	f.good = f.consumer("orders", "apache")
	f.bad = f.consumer("orders-bad", "apache-bad")
	mustCreate(t, c, f.good)
	mustCreate(t, c, f.bad)
	return f
}

// cluster is a KafkaCluster on the SASL_SSL listener with the CA Secret
// and the credentials of secret.
func (f *apacheOperator) cluster(name, secret string) *v1alpha1.KafkaCluster {
	return &v1alpha1.KafkaCluster{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Spec: v1alpha1.KafkaClusterSpec{
		BootstrapServers: []string{f.a.SASLSSL},
		TLS:              &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyRef{Name: "kafka-ca", Key: "ca.crt"}},
		SASL:             &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLMechanism(testkit.ScramMechanism), SecretRef: v1alpha1.LocalObjectRef{Name: secret}},
	}}
}

// consumer is an EventConsumer of orders through clusterName, at 10
// records of lag per replica.
func (f *apacheOperator) consumer(name, clusterName string) *v1alpha1.EventConsumer {
	return &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Spec: v1alpha1.EventConsumerSpec{
		Topics: []string{"orders"}, ConsumerGroup: name + "-handler",
		Kafka:   v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: clusterName}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptr[int64](10), PollIntervalSeconds: ptr[int32](1), OffsetResetPolicy: v1alpha1.OffsetResetEarliest},
	}}
}

// reachable returns the stored consumer and its KafkaReachable condition.
func (f *apacheOperator) reachable(ec *v1alpha1.EventConsumer) (*v1alpha1.EventConsumer, *metav1.Condition, error) {
	got := &v1alpha1.EventConsumer{}
	if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(ec), got); err != nil {
		return nil, nil, err
	}
	kr := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionKafkaReachable)
	if kr == nil {
		return got, nil, fmt.Errorf("%s: no KafkaReachable condition yet: %+v", ec.Name, got.Status.Conditions)
	}
	return got, kr, nil
}

// replicas is the good consumer's Deployment's replicas.
func (f *apacheOperator) replicas() (int32, error) {
	d := &appsv1.Deployment{}
	if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(f.good), d); err != nil {
		return 0, err
	}
	return *d.Spec.Replicas, nil
}

// connects: SASL_SSL with SCRAM-SHA-512 and a CA Secret connects: the lag is read
// and the replicas follow it, and the KafkaCluster is Ready.
func (f *apacheOperator) connects(t *testing.T) {
	ctx := context.Background()
	testenv.Eventually(t, 90*time.Second, func() error {
		got, kr, err := f.reachable(f.good)
		if err != nil {
			return err
		}
		if kr.Status != metav1.ConditionTrue || got.Status.Lag == nil || got.Status.Lag.Total != 21 {
			return fmt.Errorf("KafkaReachable %s (%s), lag %+v; want True and 21", kr.Status, kr.Message, got.Status.Lag)
		}
		return nil
	})
	testenv.Eventually(t, 60*time.Second, func() error {
		r, err := f.replicas()
		if err != nil || r != 3 {
			return fmt.Errorf("replicas %d (%v), want 3 for 21 records at 10 per replica", r, err)
		}
		kc := &v1alpha1.KafkaCluster{}
		if err := f.c.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "apache"}, kc); err != nil {
			return err
		}
		if rd := meta.FindStatusCondition(kc.Status.Conditions, v1alpha1.ConditionReady); rd == nil || rd.Status != metav1.ConditionTrue || len(kc.Status.Brokers) != 1 {
			return fmt.Errorf("KafkaCluster status %+v, want Ready and one broker", kc.Status)
		}
		return nil
	})
}

// hidesWrongPassword: a wrong password is KafkaReachable=False and appears in no status,
// event or operator log line.
func (f *apacheOperator) hidesWrongPassword(t *testing.T) {
	ctx := context.Background()
	testenv.Eventually(t, 90*time.Second, func() error {
		_, kr, err := f.reachable(f.bad)
		if err != nil {
			return err
		}
		if kr.Status != metav1.ConditionFalse {
			return fmt.Errorf("KafkaReachable %s (%s), want False", kr.Status, kr.Message)
		}
		t.Logf("wrong password: KafkaReachable=False %s: %s", kr.Reason, kr.Message)
		return nil
	})
	var seen []string
	got, _, _ := f.reachable(f.bad)
	js, _ := json.Marshal(got.Status)
	seen = append(seen, string(js))
	kcs := &v1alpha1.KafkaClusterList{}
	if err := f.c.List(ctx, kcs, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	for _, kc := range kcs.Items {
		js, _ := json.Marshal(kc.Status)
		seen = append(seen, string(js))
	}
	evs := &corev1.EventList{}
	if err := f.c.List(ctx, evs, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		seen = append(seen, e.Reason+" "+e.Message)
	}
	logs := operatorLog.String()
	if !strings.Contains(logs, "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("the operator log does not show the authentication failure, so it was not captured:\n%s", logs)
	}
	seen = append(seen, logs)
	for _, s := range seen {
		for _, secret := range []string{f.badPassword, f.a.Password} {
			if strings.Contains(s, secret) {
				t.Fatalf("a SASL password appears in status, an event or the operator log: %s", s)
			}
		}
	}
}

// holdsThroughOutage: a broker stopped for 30 s is KafkaReachable=False with the replicas
// held, and the consumer recovers without an operator restart.
func (f *apacheOperator) holdsThroughOutage(t *testing.T) {
	f.a.Stop()
	stopped := time.Now()
	sawFalse := false
	for time.Since(stopped) < 30*time.Second {
		r, err := f.replicas()
		if err != nil {
			t.Fatal(err)
		}
		if r != 3 {
			t.Fatalf("%s into the outage: replicas %d, want 3 held", time.Since(stopped).Round(time.Second), r)
		}
		if _, kr, err := f.reachable(f.good); err == nil && kr.Status == metav1.ConditionFalse {
			if !sawFalse {
				t.Logf("KafkaReachable=False %s after the broker stopped: %s", time.Since(stopped).Round(time.Second), kr.Message)
			}
			sawFalse = true
		}
		time.Sleep(time.Second)
	}
	if !sawFalse {
		t.Fatalf("KafkaReachable never went False during a 30 s outage")
	}
	f.a.Start()
	restarted := time.Now()
	testenv.Eventually(t, 3*time.Minute, func() error {
		got, kr, err := f.reachable(f.good)
		if err != nil {
			return err
		}
		if kr.Status != metav1.ConditionTrue || got.Status.Lag == nil || got.Status.Lag.Total != 21 {
			return fmt.Errorf("KafkaReachable %s (%s), lag %+v; want True and 21 again", kr.Status, kr.Message, got.Status.Lag)
		}
		return nil
	})
	t.Logf("recovered %s after the broker came back", time.Since(restarted).Round(time.Second))
	if r, err := f.replicas(); err != nil || r != 3 {
		t.Fatalf("after recovery: replicas %d (%v), want 3", r, err)
	}
}

// setOperatorLogger sends the operator's log to operatorLog (and stderr
// under -v), once for every test of the binary that runs the operator.
func setOperatorLogger() {
	operatorLogOnce.Do(func() {
		var w io.Writer = &operatorLog
		if testing.Verbose() {
			w = io.MultiWriter(&operatorLog, os.Stderr)
		}
		ctrl.SetLogger(zap.New(zap.WriteTo(w), zap.Level(zapcore.DebugLevel)))
	})
}

func mustCreate(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func ptr[T any](v T) *T { return &v }

// startOperatorWithControlPlane starts a control plane and the operator
// against it, with a 1 s default poll, both stopped when the test ends,
// and returns an admin client.
func startOperatorWithControlPlane(t *testing.T) client.Client {
	t.Helper()
	env, err := testenv.Start()
	if err != nil {
		t.Fatalf("start control plane (run `make test-env`): %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- operator.Run(ctx, env.Admin, operator.Options{
			MetricsAddr: "0", ProbeAddr: "0", DefaultPollInterval: time.Second, SkipNameValidation: true,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	return env.Client
}
