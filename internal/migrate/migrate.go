package migrate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// Options change how values KEDA keeps in Secrets are treated.
type Options struct {
	// SASL is the KEDA sasl value (none, plaintext, scram_sha256,
	// scram_sha512) to use when the trigger takes it from a Secret or
	// ConfigMap, whose values migrate never reads.
	SASL string
	// TLS is the KEDA tls value (enable, disable) for the same case.
	TLS string
	// Own moves the scaled Deployment's pod template into spec.template,
	// so that lagscale creates and owns a new Deployment in its place. By
	// default the EventConsumer scales the workload as it is, through
	// spec.scaleTargetRef, and nothing in it changes.
	Own bool
}

// Result is the converted objects and the report of every ScaledObject.
type Result struct {
	Clusters  []*v1alpha1.KafkaCluster
	Consumers []*v1alpha1.EventConsumer
	Reports   []*Report
}

// Failed reports whether any ScaledObject had an essential field that
// could not be mapped; its EventConsumer is then left out of the result.
func (r *Result) Failed() bool {
	for _, rep := range r.Reports {
		if rep.Failed() {
			return true
		}
	}
	return false
}

// KEDA's defaults, applied when a field is absent so that the EventConsumer
// states the value KEDA was using rather than lagscale's own default.
const (
	kedaPollingInterval = 30
	kedaCooldownPeriod  = 300
	kedaMinReplicas     = 0
	kedaMaxReplicas     = 100
	kedaLagThreshold    = 10
	// hpaScaleDownWindow is the HPA's default scale-down stabilization,
	// which KEDA's HPA uses between 1 and N replicas.
	hpaScaleDownWindow = 300
)

// Bounds of EventConsumer fields that KEDA does not have.
const (
	maxPollInterval  = 300
	maxStabilization = 3600
)

// Convert maps every ScaledObject of the input. An input without any
// ScaledObject is an error; a ScaledObject that cannot be mapped has a
// failed Report and no EventConsumer.
func Convert(in *Input, o Options) (*Result, error) {
	if len(in.ScaledObjects) == 0 {
		return nil, fmt.Errorf("no KEDA ScaledObject (apiVersion keda.sh/v1alpha1) in the input")
	}
	if err := validChoice("--sasl", o.SASL, "none", "plaintext", "scram_sha256", "scram_sha512"); err != nil {
		return nil, err
	}
	if err := validChoice("--tls", o.TLS, "enable", "disable"); err != nil {
		return nil, err
	}
	res := &Result{}
	sos := append([]*ScaledObject(nil), in.ScaledObjects...)
	sort.SliceStable(sos, func(i, j int) bool { return sos[i].Namespace+"/"+sos[i].Name < sos[j].Namespace+"/"+sos[j].Name })
	for _, so := range sos {
		ec, rep := convertOne(so, in, o)
		res.Reports = append(res.Reports, rep)
		if ec != nil && !rep.Failed() {
			res.Consumers = append(res.Consumers, ec)
		}
	}
	res.Clusters = shareClusters(res.Consumers, res.Reports)
	return res, nil
}

func validChoice(flag, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q: want one of %s", flag, v, strings.Join(allowed, ", "))
}
