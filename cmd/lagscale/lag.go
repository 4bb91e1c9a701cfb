package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sort"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/scheme"
)

// runLag prints one EventConsumer's lag the way kafka-consumer-groups
// --describe prints a group, from the status the operator keeps.
func runLag(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("lag", flag.ContinueOnError)
	fs.SetOutput(stdout)
	namespace := fs.String("n", "", "namespace of the EventConsumer (default: the kubeconfig's)")
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: lagscale lag NAME [-n NAMESPACE] [--kubeconfig FILE]")
		fs.PrintDefaults()
	}
	// Accept the name before or after the flags, as kubectl does.
	var name string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" {
		fs.Usage()
		return fmt.Errorf("lag: want the EventConsumer's name")
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	if *namespace == "" {
		ns, _, err := cc.Namespace()
		if err != nil {
			return fmt.Errorf("lag: no usable kubeconfig (%w): pass --kubeconfig FILE or set KUBECONFIG; for the sandbox, `lagscale sandbox up` prints the export line", err)
		}
		*namespace = ns
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("lag: no usable kubeconfig (%w): pass --kubeconfig FILE or set KUBECONFIG; for the sandbox, `lagscale sandbox up` prints the export line", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return fmt.Errorf("lag: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ec := &v1alpha1.EventConsumer{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: *namespace, Name: name}, ec); err != nil {
		return lagGetError(err, name, *namespace, cfg.Host)
	}
	return printLag(stdout, ec, time.Now())
}

// printLag writes the per-partition table and the totals.
func printLag(w io.Writer, ec *v1alpha1.EventConsumer, now time.Time) error {
	l := ec.Status.Lag
	fmt.Fprintf(w, "CONSUMER %s/%s  GROUP %s  TOPICS %v\n", ec.Namespace, ec.Name, ec.Spec.ConsumerGroup, ec.Spec.Topics)
	if l == nil {
		fmt.Fprintln(w, "no lag reading yet: the operator has not polled this group (see kubectl describe eventconsumer for conditions)")
		return nil
	}
	parts := append([]v1alpha1.PartitionLagStatus(nil), l.Partitions...)
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].Partition < parts[j].Partition
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tTIME-LAG\tHEALTH\t")
	for _, p := range parts {
		committed := fmt.Sprint(p.CommittedOffset)
		if p.CommittedOffset < 0 {
			committed = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%.1fs\t%s\t\n", p.Topic, p.Partition, committed, p.EndOffset, p.Lag, p.Seconds, p.Health)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if int(ec.Status.Partitions) > len(parts) {
		fmt.Fprintf(w, "(showing the %d partitions with the largest time lag of %d)\n", len(parts), ec.Status.Partitions)
	}
	fmt.Fprintf(w, "\nTOTAL LAG %d records, time lag %.1fs; inflow %.1f/s, consumption %.1f/s", l.Total, l.Seconds, l.ProductionRate, l.ConsumptionRate)
	if l.DrainSeconds != nil {
		fmt.Fprintf(w, ", drains in %.0fs", *l.DrainSeconds)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "GROUP %s with %d members; replicas %d ready of %d desired", orDash(l.GroupState), l.Members, ec.Status.ReadyReplicas, ec.Status.DesiredReplicas)
	if l.Updated != nil {
		fmt.Fprintf(w, "; read %s ago", now.Sub(l.Updated.Time).Truncate(time.Second))
	}
	if l.Stale {
		fmt.Fprint(w, " (STALE: the last poll failed)")
	}
	fmt.Fprintln(w)
	if len(l.MissingTopics) > 0 {
		fmt.Fprintf(w, "MISSING TOPICS %v\n", l.MissingTopics)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lagGetError turns the API server's answer (or its absence) into one line
// that says what to do.
func lagGetError(err error, name, namespace, host string) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("lag: no EventConsumer %q in namespace %q: list them with `kubectl get eventconsumers -A`, or pass -n NAMESPACE", name, namespace)
	case meta.IsNoMatchError(err):
		return fmt.Errorf("lag: the cluster at %s has no EventConsumer kind: install lagscale's CRDs (helm install lagscale charts/lagscale)", host)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return fmt.Errorf("lag: the cluster at %s refused to show EventConsumer %s/%s (%w): use a kubeconfig allowed to get eventconsumers", host, namespace, name, err)
	}
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("lag: cannot reach the Kubernetes API at %s (%w): is the cluster up? For the sandbox run `lagscale sandbox up` and use the KUBECONFIG it prints", host, err)
	}
	return fmt.Errorf("lag: get EventConsumer %s/%s from %s: %w", namespace, name, host, err)
}
