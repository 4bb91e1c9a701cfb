// Package v1alpha1 contains the lagscale.dev/v1alpha1 API: EventConsumer, which
// runs a Kafka consumer handler as a Deployment scaled from its consumer
// group's lag, and KafkaCluster, which names a Kafka connection that several
// EventConsumers share.
//
// +kubebuilder:object:generate=true
// +groupName=lagscale.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "lagscale.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	// It is apimachinery's, so that importing the API pulls in nothing of
	// controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds of this package and their lists.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &EventConsumer{}, &EventConsumerList{}, &KafkaCluster{}, &KafkaClusterList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
