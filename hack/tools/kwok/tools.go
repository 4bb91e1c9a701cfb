//go:build tools

// Package tools pins kwok, the fake kubelet the sandbox runs. It is its own
// module because kwok's Kubernetes libraries differ from hack/tools'.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
