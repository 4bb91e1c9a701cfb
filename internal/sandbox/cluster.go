package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/lagscale/lagscale/internal/scheme"
)

// OperatorNamespace and OperatorServiceAccount are who the operator runs
// as: a service account bound to config/rbac/role.yaml and nothing more,
// as after `helm install`.
const (
	OperatorNamespace      = "lagscale-system"
	OperatorServiceAccount = "lagscale"
)

// createNodes creates the fake nodes kwok manages.
func (s *Sandbox) createNodes(ctx context.Context, n int) error {
	for i := 0; i < n; i++ {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("kwok-node-%d", i),
			Annotations: map[string]string{kwokNodeAnnotation: "fake"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i),
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		}}
		if err := s.Client.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
	}
	return nil
}

// waitNodesReady waits until kwok reports n Ready nodes.
func (s *Sandbox) waitNodesReady(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var nodes corev1.NodeList
		ready := 0
		if err := s.Client.List(ctx, &nodes); err == nil {
			for _, node := range nodes.Items {
				for _, c := range node.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready >= n {
			return nil
		}
		for _, c := range s.children {
			if c.exited() {
				return c.exitError()
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d kwok nodes Ready after %s: see %s", ready, n, timeout, filepath.Join(s.layout.Logs(), "kwok.log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// installOperatorPrereqs installs the CRDs, the operator's namespace,
// service account and generated RBAC, and returns a rest config that
// impersonates that service account.
func (s *Sandbox) installOperatorPrereqs(ctx context.Context) (*rest.Config, error) {
	if _, err := envtest.InstallCRDs(s.Config, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(s.opts.Root, "config", "crd", "bases")},
		ErrorIfPathMissing: true,
	}); err != nil {
		return nil, fmt.Errorf("install CRDs: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}
	if err := s.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: OperatorServiceAccount, Namespace: OperatorNamespace}}
	if err := s.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(s.opts.Root, "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if _, _, err := serializer.NewCodecFactory(scheme.New()).UniversalDeserializer().Decode(raw, nil, role); err != nil {
		return nil, fmt.Errorf("decode config/rbac/role.yaml: %w", err)
	}
	if err := createOrReplace(ctx, s.Client, role); err != nil {
		return nil, err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: OperatorServiceAccount, Namespace: OperatorNamespace}},
	}
	if err := createOrReplace(ctx, s.Client, binding); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(s.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + OperatorNamespace + ":" + OperatorServiceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + OperatorNamespace, "system:authenticated"},
	}
	return cfg, nil
}

func createOrReplace(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Create(ctx, obj)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing := obj.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing); err != nil {
		return err
	}
	obj.SetResourceVersion(existing.GetResourceVersion())
	return c.Update(ctx, obj)
}

// buildTools runs `make sandbox-tools` with its output shown, for the first
// run on a fresh machine.
func buildTools(ctx context.Context, root string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintln(out, ">> building the sandbox tools with `make sandbox-tools` (control plane and kwok from source; the first build takes about 10 minutes)")
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "sandbox-tools")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`make sandbox-tools` failed (%w): see its output above", err)
	}
	return nil
}
