// Package v1alpha1 contains the lagscale.dev/v1alpha1 API: EventConsumer, which
// runs a Kafka consumer handler as a Deployment scaled from its consumer
// group's lag, and KafkaCluster, which names a Kafka connection that several
// EventConsumers share.
//
// +kubebuilder:object:generate=true
// +groupName=lagscale.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "lagscale.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
