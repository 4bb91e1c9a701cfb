//go:build tools

// Package tools pins Helm, which tests use to lint and render the chart. It
// is its own module because Helm's Kubernetes dependencies differ from those
// of the control plane in hack/tools.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
