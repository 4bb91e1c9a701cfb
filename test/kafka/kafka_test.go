//go:build kafka

// Package kafka is the compatibility suite: lagscale against Apache Kafka,
// the broker users run, and against kfake beside it, so that a misreading
// of the protocol shared by kfake and franz-go shows up as a difference.
// It needs the jars of `make kafka` and a JDK; `make test-kafka` runs it.
// A missing JDK or jar fails the suite, it never skips.
package kafka

import (
	"testing"

	"github.com/lagscale/lagscale/internal/testkit"
)

// brokerKinds are the brokers every lag case runs on: kfake, Apache Kafka
// 4.x and 3.9.
var brokerKinds = []string{"kfake", testkit.KafkaVersion, testkit.KafkaClassicVersion}

// startBroker starts the broker of kind, stopped when t ends.
func startBroker(t *testing.T, kind string) testkit.Broker {
	t.Helper()
	if kind == "kfake" {
		return testkit.NewKafka(t, 1)
	}
	return testkit.StartApache(t, kind)
}

// forEachBroker runs fn as a subtest on each broker kind, one after the
// other: JVM brokers share the machine's few cores with everything else.
func forEachBroker(t *testing.T, fn func(t *testing.T, b testkit.Broker)) {
	for _, kind := range brokerKinds {
		t.Run(kind, func(t *testing.T) { fn(t, startBroker(t, kind)) })
	}
}
