package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/internal/migrate"
	"github.com/lagscale/lagscale/internal/scheme"
)

// files is a repeatable -f flag.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

// runMigrate converts KEDA ScaledObjects into EventConsumers: YAML on
// stdout, the per-field report on stderr, an error when an essential field
// could not be mapped.
func runMigrate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var in files
	fs.Var(&in, "f", "file of ScaledObjects, TriggerAuthentications, ClusterTriggerAuthentications and Deployments; - is stdin (repeatable)")
	fromCluster := fs.Bool("from-cluster", false, "read scaled Deployments and TriggerAuthentications missing from the files from the cluster")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for --from-cluster (default: $KUBECONFIG or ~/.kube/config)")
	sasl := fs.String("sasl", "", "KEDA sasl value (none, plaintext, scram_sha256, scram_sha512) when the trigger keeps it in a Secret, which migrate does not read")
	tls := fs.String("tls", "", "KEDA tls value (enable, disable) when the trigger keeps it in a Secret")
	own := fs.Bool("own", false, "move the scaled Deployment's pod template into spec.template, so lagscale replaces it with a Deployment it owns (default: the EventConsumer scales the workload as it is, through spec.scaleTargetRef)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: lagscale migrate -f FILE|- [-f FILE...] [--from-cluster] [--sasl MODE] [--tls MODE] [--own]")
		fmt.Fprintln(stderr, "Writes EventConsumers (and shared KafkaClusters) for KEDA ScaledObjects with kafka or apache-kafka triggers to stdout,")
		fmt.Fprintln(stderr, "and for every field whether it was mapped, approximated or is unsupported to stderr.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(in) == 0 {
		fs.Usage()
		return errors.New("migrate: want -f FILE or -f -")
	}
	input := &migrate.Input{}
	for _, name := range in {
		r := stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			defer f.Close()
			r = f
		}
		if err := migrate.Decode(r, input); err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		}
	}
	if *fromCluster {
		if err := readFromCluster(context.Background(), *kubeconfig, input); err != nil {
			return fmt.Errorf("migrate: --from-cluster: %w", err)
		}
	}
	res, err := migrate.Convert(input, migrate.Options{SASL: *sasl, TLS: *tls, Own: *own})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := migrate.WriteYAML(stdout, res); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := migrate.WriteReport(stderr, res); err != nil {
		return err
	}
	if res.Failed() {
		return errors.New("migrate: some ScaledObjects were not migrated (see the essential lines above)")
	}
	return nil
}

// readFromCluster adds the Deployments and TriggerAuthentications that the
// ScaledObjects name and the files lack, read through the kubeconfig.
// Secrets are never read.
func readFromCluster(ctx context.Context, kubeconfig string, in *migrate.Input) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	ns, _, err := cc.Namespace()
	if err != nil {
		return err
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	for _, so := range in.ScaledObjects {
		if so.Namespace == "" {
			so.Namespace = ns
		}
		if ref := so.Spec.ScaleTargetRef; ref != nil && ref.Name != "" && (ref.Kind == "" || ref.Kind == "Deployment") {
			key := so.Namespace + "/" + ref.Name
			if _, ok := in.Deployments[key]; !ok {
				d := &appsv1.Deployment{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: so.Namespace, Name: ref.Name}, d); err == nil {
					in.Deployments[key] = d
				} else if !apierrors.IsNotFound(err) {
					return err
				}
			}
		}
		for _, t := range so.Spec.Triggers {
			if t.AuthenticationRef == nil {
				continue
			}
			kind := t.AuthenticationRef.Kind
			if kind == "" {
				kind = "TriggerAuthentication"
			}
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: kind})
			key := client.ObjectKey{Namespace: so.Namespace, Name: t.AuthenticationRef.Name}
			if kind == "ClusterTriggerAuthentication" {
				key.Namespace = ""
			}
			if migrate.HasAuth(in, kind, key.Namespace, key.Name) {
				continue
			}
			if err := c.Get(ctx, key, u); err != nil {
				if apierrors.IsNotFound(err) || meta404(err) {
					continue // reported as an unknown reference
				}
				return err
			}
			raw, err := u.MarshalJSON()
			if err != nil {
				return err
			}
			if err := migrate.Decode(strings.NewReader(string(raw)), in); err != nil {
				return err
			}
		}
	}
	return nil
}

// meta404 reports a kind the cluster does not serve (KEDA not installed).
func meta404(err error) bool {
	return strings.Contains(err.Error(), "no matches for kind")
}
