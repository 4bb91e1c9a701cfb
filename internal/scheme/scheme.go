// Package scheme builds the runtime.Scheme lagscale's clients use: the
// built-in Kubernetes types and lagscale.dev/v1alpha1.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// New returns a scheme with the built-in types and lagscale's.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}
