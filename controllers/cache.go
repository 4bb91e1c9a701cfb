package controllers

import (
	"context"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
)

// CacheOptions are the informer cache settings the reconcilers are written
// for. On a shared cluster most Deployments and Secrets are not lagscale's,
// so the cache must not hold them:
//
//   - Deployments are cached only with the managed-by=lagscale label, the
//     label every handler Deployment carries.
//   - Secrets are cached as metadata only (WatchesMetadata), and even the
//     metadata loses annotations and managed fields: a Secret created with
//     `kubectl apply` carries its whole content in an annotation. The
//     values are read from the API server when a referenced Secret's
//     resourceVersion changes (see ClientOptions and secretCache).
//   - Managed fields are stripped from every cached object, and they are
//     often the largest part of an object; a Deployment keeps who wrote it
//     and when, without the field sets (trimDeploymentFields).
//
// namespaces restricts the cache; empty caches all namespaces.
func CacheOptions(namespaces []string) cache.Options {
	o := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: labels.SelectorFromSet(labels.Set{deploy.LabelManagedBy: deploy.ManagedBy})},
		},
		DefaultTransform: stripForCache,
	}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range namespaces {
			o.DefaultNamespaces[n] = cache.Config{}
		}
	}
	return o
}

// ClientOptions make the manager's client read Secrets from the API server
// instead of building a cache of every Secret's content on first use.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}

// CachedObjects are the kinds the EventConsumer and KafkaCluster
// controllers watch. A manager that is not (yet) the leader starts their
// informers too, so that it is Ready with warm caches and takes over
// without a cold start.
func CachedObjects() []client.Object {
	return []client.Object{
		&v1alpha1.EventConsumer{},
		&v1alpha1.KafkaCluster{},
		&appsv1.Deployment{},
		&autoscalingv2.HorizontalPodAutoscaler{},
		secretMetadata(),
	}
}

// secretMetadata is the metadata-only form of a Secret, the way the cache
// holds Secrets.
func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// stripForCache drops what no reconciler reads before an object enters the
// cache: managed fields (all but who wrote a Deployment), and the annotations of
// metadata-only objects (Secrets), which may hold copies of secret values.
func stripForCache(in any) (any, error) {
	if d, ok := in.(*appsv1.Deployment); ok {
		d.ManagedFields = trimDeploymentFields(d.ManagedFields)
		return d, nil
	}
	if o, ok := in.(metav1.Object); ok {
		o.SetManagedFields(nil)
		if _, meta := in.(*metav1.PartialObjectMetadata); meta {
			o.SetAnnotations(nil)
		}
	}
	return in, nil
}

// secretCache holds the content of the Secrets that connections reference,
// by resourceVersion, so that a reconcile reads a Secret from the API
// server only when it changed. It holds no Secret nobody references: each
// reconcile says which Secrets its object references (retain), and a
// Secret no object references any more is dropped.
type secretCache struct {
	mu    sync.Mutex
	byKey map[types.NamespacedName]*corev1.Secret
	// refs is, for each referring object ("Kind/namespace/name"), the
	// Secrets it referenced at its last reconcile.
	refs map[string][]types.NamespacedName
}

func newSecretCache() *secretCache {
	return &secretCache{byKey: map[types.NamespacedName]*corev1.Secret{}, refs: map[string][]types.NamespacedName{}}
}

// retain records that referrer references secrets now (none once it is
// deleted) and drops the content of every Secret left without a referrer.
func (c *secretCache) retain(referrer string, secrets []types.NamespacedName) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(secrets) == 0 {
		delete(c.refs, referrer)
	} else {
		c.refs[referrer] = secrets
	}
	used := map[types.NamespacedName]bool{}
	for _, keys := range c.refs {
		for _, k := range keys {
			used[k] = true
		}
	}
	for k := range c.byKey {
		if !used[k] {
			delete(c.byKey, k)
		}
	}
}

// held is the number of Secrets whose content is held, for tests.
func (c *secretCache) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// secretKeys are the keys of a connection's Secrets in namespace.
func secretKeys(namespace string, names []string) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(names))
	for _, n := range names {
		out = append(out, types.NamespacedName{Namespace: namespace, Name: n})
	}
	return out
}

// secretReader is a client.Reader whose Secret reads go to the metadata
// cache (Meta) for the resourceVersion and to the API server (Reader, whose
// Secret reads are not cached; see ClientOptions) for the content when that
// version is not the one held. Other reads go to Reader. The metadata must
// come from the cache itself: the client's DisableFor matches a Secret's
// metadata-only form too, and would send every look to the API server.
type secretReader struct {
	client.Reader
	Meta client.Reader
	memo *secretCache
}

// Get implements client.Reader.
func (s secretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	sec, ok := obj.(*corev1.Secret)
	if !ok || s.memo == nil {
		return s.Reader.Get(ctx, key, obj, opts...)
	}
	metaReader := s.Meta
	if metaReader == nil {
		metaReader = s.Reader
	}
	meta := secretMetadata()
	if err := metaReader.Get(ctx, key, meta); err != nil {
		if apierrors.IsNotFound(err) {
			s.memo.mu.Lock()
			delete(s.memo.byKey, key)
			s.memo.mu.Unlock()
		}
		return err
	}
	s.memo.mu.Lock()
	held := s.memo.byKey[key]
	s.memo.mu.Unlock()
	if held != nil && held.ResourceVersion == meta.ResourceVersion {
		held.DeepCopyInto(sec)
		return nil
	}
	if err := s.Reader.Get(ctx, key, sec, opts...); err != nil {
		return err
	}
	keep := &corev1.Secret{Data: sec.Data}
	keep.Namespace, keep.Name, keep.ResourceVersion = sec.Namespace, sec.Name, sec.ResourceVersion
	s.memo.mu.Lock()
	s.memo.byKey[key] = keep.DeepCopy()
	s.memo.mu.Unlock()
	return nil
}
