package controllers

import (
	"context"
	"fmt"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestInsecureSkipVerifyLeavesATrace sets tls.insecureSkipVerify: the
// consumer gets a Warning event and an InsecureTLS condition saying so,
// which goes when the setting goes.
func TestInsecureSkipVerifyLeavesATrace(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	createConsumer(t, ns, "insecure", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9093"}, TLS: &v1alpha1.TLSConfig{InsecureSkipVerify: true}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	eventually(t, wait, func() error {
		c := meta.FindStatusCondition(getConsumer(t, ns, "insecure").Status.Conditions, v1alpha1.ConditionInsecureTLS)
		if c == nil || c.Status != "True" || c.Message != insecureTLSMessage {
			return fmt.Errorf("InsecureTLS condition %+v", c)
		}
		return nil
	})
	eventually(t, wait, func() error {
		list := &eventsv1.EventList{}
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Reason == v1alpha1.EventInsecureTLS && e.Type == EventWarningType && e.Note == insecureTLSMessage && e.Regarding.Name == "insecure" {
				return nil
			}
		}
		return fmt.Errorf("no Warning %s event among %d events", v1alpha1.EventInsecureTLS, len(list.Items))
	})

	eventually(t, wait, func() error {
		cur := getConsumer(t, ns, "insecure")
		cur.Spec.Kafka.TLS.InsecureSkipVerify = false
		return env.Client.Update(context.Background(), cur)
	})
	eventually(t, wait, func() error {
		if c := meta.FindStatusCondition(getConsumer(t, ns, "insecure").Status.Conditions, v1alpha1.ConditionInsecureTLS); c != nil {
			return fmt.Errorf("InsecureTLS condition stays after the setting went: %+v", c)
		}
		return nil
	})
}
