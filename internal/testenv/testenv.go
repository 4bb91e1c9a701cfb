// Package testenv starts the real control plane (etcd and kube-apiserver
// built by hack/tools) for tests, with lagscale's CRDs installed and a user
// that holds exactly the operator's generated RBAC.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/lagscale/lagscale/internal/scheme"
)

// KubernetesVersion is the version hack/tools builds.
const KubernetesVersion = "1.37.2"

// OperatorUser is the user the operator runs as in tests: it is bound to
// config/rbac/role.yaml and nothing else, so a missing RBAC marker fails.
const OperatorUser = "system:serviceaccount:lagscale-system:lagscale"

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir returns the directory holding etcd and kube-apiserver:
// KUBEBUILDER_ASSETS if set, else bin/k8s/<version> in the repository. It
// fails with the command that builds them when they are missing.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(Root(), "bin", "k8s", KubernetesVersion)
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("control-plane binary %s not found in %s: run `make test-env` to build it (about 6 minutes the first time)", b, dir)
		}
	}
	return dir, nil
}

// Scheme has the built-in types and lagscale's.
func Scheme() *k8sruntime.Scheme { return scheme.New() }

// Env is a running control plane.
type Env struct {
	Env *envtest.Environment
	// Admin is a cluster-admin rest config, for the test's own actions.
	Admin *rest.Config
	// Operator is a rest config for OperatorUser, bound to the generated
	// ClusterRole only.
	Operator *rest.Config
	// Client is an admin client.
	Client client.Client

	record string
}

// Options change what Start installs.
type Options struct {
	// NoCRDs leaves the CRDs out, for a test that installs them itself
	// (helm install does).
	NoCRDs bool
}

// Start starts etcd and kube-apiserver with the CRDs installed and the
// operator's RBAC bound to OperatorUser. Call Stop when done, also on
// failure: it stops both processes by their PIDs.
func Start() (*Env, error) { return StartWith(Options{}) }

// StartWith is Start with options.
func StartWith(o Options) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	e := &envtest.Environment{BinaryAssetsDirectory: assets}
	if !o.NoCRDs {
		e.CRDDirectoryPaths = []string{filepath.Join(Root(), "config", "crd", "bases")}
		e.ErrorIfCRDPathMissing = true
	}
	for _, p := range reapOrphans() {
		fmt.Fprintf(os.Stderr, "testenv: stopped an orphaned control-plane process: %s\n", p)
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	rec, _ := remember([]string{e.ControlPlane.APIServer.CertDir, e.ControlPlane.Etcd.DataDir})
	env := &Env{Env: e, Admin: cfg, record: rec}
	if env.Client, err = client.New(cfg, client.Options{Scheme: Scheme()}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if err := env.bindOperatorRBAC(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	user, err := e.AddUser(envtest.User{Name: OperatorUser}, cfg)
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("add operator user: %w", err)
	}
	env.Operator = user.Config()
	return env, nil
}

// Stop stops kube-apiserver and etcd.
func (e *Env) Stop() error {
	err := e.Env.Stop()
	if err == nil {
		forget(e.record)
	}
	return err
}

// WriteKubeconfig writes an admin kubeconfig for the control plane, for
// tools such as helm and kubectl.
func (e *Env) WriteKubeconfig(path string) error {
	c := e.Admin
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*cfg, path)
}

// OperatorNamespace is the namespace of the generated Role (the Lease and
// leader-election Events); Start creates it.
const OperatorNamespace = "lagscale-system"

// bindOperatorRBAC creates the generated ClusterRole and Role and binds
// them to OperatorUser.
func (e *Env) bindOperatorRBAC() error {
	raw, err := os.ReadFile(filepath.Join(Root(), "config", "rbac", "role.yaml"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	ns := &corev1.Namespace{}
	ns.Name = OperatorNamespace
	if err := e.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", OperatorNamespace, err)
	}
	codecs := serializer.NewCodecFactory(Scheme())
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: OperatorUser}}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		obj, _, err := codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			return fmt.Errorf("decode config/rbac/role.yaml: %w", err)
		}
		switch role := obj.(type) {
		case *rbacv1.ClusterRole:
			if err := e.Client.Create(ctx, role); err != nil {
				return fmt.Errorf("create ClusterRole: %w", err)
			}
			binding := &rbacv1.ClusterRoleBinding{Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}}
			binding.Name = role.Name
			if err := e.Client.Create(ctx, binding); err != nil {
				return fmt.Errorf("create ClusterRoleBinding: %w", err)
			}
		case *rbacv1.Role:
			if err := e.Client.Create(ctx, role); err != nil {
				return fmt.Errorf("create Role: %w", err)
			}
			binding := &rbacv1.RoleBinding{Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}}
			binding.Name, binding.Namespace = role.Name, role.Namespace
			if err := e.Client.Create(ctx, binding); err != nil {
				return fmt.Errorf("create RoleBinding: %w", err)
			}
		default:
			return fmt.Errorf("config/rbac/role.yaml holds a %T, want ClusterRole or Role", obj)
		}
	}
	return nil
}

// Eventually polls cond until it returns nil or wait passes, then fails the
// test with cond's last error. It is the one bounded wait of the tests.
func Eventually(t testing.TB, wait time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", wait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
