package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MetricsReaderRules are the rules of the chart's metrics-reader
// ClusterRole, for tests that run the operator without the chart.
var MetricsReaderRules = []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}

// EnsureClusterRole creates the ClusterRole name with rules, or leaves the
// one that exists.
func (e *Env) EnsureClusterRole(ctx context.Context, name string, rules []rbacv1.PolicyRule) error {
	err := e.Client.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRole %s: %w", name, err)
	}
	return nil
}

// ServiceAccountToken creates the ServiceAccount ns/name (and its
// namespace) if missing, binds it to clusterRole unless that is empty, and
// returns a bearer token for it from the TokenRequest API: the kind of
// token Prometheus presents, which the API server authenticates with a
// TokenReview.
func (e *Env) ServiceAccountToken(ctx context.Context, ns, name, clusterRole string) (string, error) {
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
	} {
		if err := e.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	if clusterRole != "" {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name + "-" + clusterRole},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		if err := e.Client.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("bind %s to %s: %w", name, clusterRole, err)
		}
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := e.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("request a token for %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

func ptr[T any](v T) *T { return &v }

// ScrapeMetrics reads https://addr/metrics with the bearer token (none when
// empty) and returns the HTTP status and the body. The certificate is not
// verified: the operator serves a self-signed one unless given its own, as
// the chart's ServiceMonitor says to Prometheus.
func ScrapeMetrics(addr, token string) (int, string, error) {
	c := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed test endpoint
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
