package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// WriteYAML writes the KafkaClusters, then the EventConsumers, as one YAML
// stream that kubectl apply takes. Status and empty metadata are left out.
func WriteYAML(w io.Writer, res *Result) error {
	var objs []any
	for _, kc := range res.Clusters {
		objs = append(objs, kc)
	}
	for _, ec := range res.Consumers {
		objs = append(objs, ec)
	}
	for i, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		delete(m, "status")
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		if spec, ok := m["spec"].(map[string]any); ok {
			if t, ok := spec["template"].(map[string]any); ok {
				if md, ok := t["metadata"].(map[string]any); ok {
					delete(md, "creationTimestamp")
					if len(md) == 0 {
						delete(t, "metadata")
					}
				}
			}
		}
		out, err := yaml.Marshal(m)
		if err != nil {
			return err
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// WriteReport writes each ScaledObject's lines: outcome, field, detail.
func WriteReport(w io.Writer, res *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range res.Reports {
		verdict := "migrated"
		if r.Failed() {
			verdict = "NOT migrated: an essential field cannot be mapped"
		}
		fmt.Fprintf(tw, "ScaledObject %s: %s\n", r.ScaledObject, verdict)
		for _, l := range r.Lines {
			o := string(l.Outcome)
			if l.Essential {
				o += " (essential)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", o, l.Field, l.Detail)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeSwitch(w, res)
}

// writeSwitch says how to switch a workload that stays where it is from
// KEDA to lagscale: the order matters, since the EventConsumer waits for
// the ScaledObject's HPA to go rather than fight it.
func writeSwitch(w io.Writer, res *Result) error {
	var deletes []string
	for _, ec := range res.Consumers {
		if ec.Spec.ScaleTargetRef == nil {
			continue
		}
		ns := ""
		if ec.Namespace != "" {
			ns = " -n " + ec.Namespace
		}
		// The EventConsumer has the ScaledObject's name and namespace.
		deletes = append(deletes, fmt.Sprintf("     kubectl delete scaledobject%s %s", ns, ec.Name))
	}
	if len(deletes) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, `
Next, without redeploying anything:
  1. kubectl apply -f <the EventConsumers above>
     Each is Ready=False, reason ScaleTargetConflict, and writes nothing while the ScaledObject's HPA exists.
  2. Delete the ScaledObjects; each EventConsumer then takes its workload over by itself:
%s
  3. Remove replicas from the workloads' manifests (Helm chart, Argo CD, Flux), as for an HPA.
`, strings.Join(deletes, "\n"))
	return err
}
