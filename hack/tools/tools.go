//go:build tools

// Package tools pins the control-plane components that hack/tools builds into
// bin/k8s/<version>/. It is a separate module so that the operator's own
// go.mod never carries k8s.io/kubernetes and its replace directives.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
