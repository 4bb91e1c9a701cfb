//go:build kafka

package kafka

import (
	"testing"

	"github.com/lagscale/lagscale/internal/testkit"
)

func TestBrokerStarts(t *testing.T) {
	for _, v := range []string{testkit.KafkaVersion, testkit.KafkaClassicVersion} {
		t.Run(v, func(t *testing.T) {
			a := testkit.StartApache(t, v)
			testkit.CreateTopics(t, a, 3, "t")
		})
	}
}
