package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
)

// resolvedConnection is a consumer's Kafka connection with its Secrets
// read: references for the Deployment, values for the lag engine only.
type resolvedConnection struct {
	deploy.Connection

	// clusterRef is the KafkaCluster used, if any.
	clusterRef *types.NamespacedName

	username, password string
	ca, cert, key      []byte
}

// resolveConnection follows a clusterRef and reads the referenced Secrets.
// A missing KafkaCluster, Secret or key is a wait (the watches bring the
// consumer back when it appears), not an error.
func (r *EventConsumerReconciler) resolveConnection(ctx context.Context, ec *v1alpha1.EventConsumer) (*resolvedConnection, *condition, error) {
	var cluster *v1alpha1.KafkaCluster
	out := &resolvedConnection{}
	if ref := ec.Spec.Kafka.ClusterRef; ref != nil {
		key := types.NamespacedName{Namespace: ec.Namespace, Name: ref.Name}
		cluster = &v1alpha1.KafkaCluster{}
		if err := r.Get(ctx, key, cluster); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &condition{
					reason:  v1alpha1.ReasonClusterNotFound,
					message: fmt.Sprintf("waiting for KafkaCluster %q in namespace %q", ref.Name, ec.Namespace),
				}, nil
			}
			return nil, nil, fmt.Errorf("get KafkaCluster: %w", err)
		}
		out.clusterRef = &key
	}
	out.Connection = deploy.ConnectionOf(ec, cluster)
	r.secrets.retain(secretReferrer("EventConsumer", client.ObjectKeyFromObject(ec)), secretKeys(ec.Namespace, out.SecretNames()))
	return readSecrets(ctx, secretReader{Reader: r.Client, Meta: r.cache, memo: r.secrets}, ec.Namespace, out)
}

// readSecrets reads the Secret values a connection references.
func readSecrets(ctx context.Context, r client.Reader, namespace string, out *resolvedConnection) (*resolvedConnection, *condition, error) {
	secrets := map[string]*corev1.Secret{}
	get := func(name, key string) ([]byte, *condition, error) {
		s, ok := secrets[name]
		if !ok {
			s = &corev1.Secret{}
			if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, &condition{
						reason:  v1alpha1.ReasonSecretNotFound,
						message: fmt.Sprintf("waiting for Secret %q in namespace %q", name, namespace),
					}, nil
				}
				return nil, nil, fmt.Errorf("get Secret %s: %w", name, err)
			}
			secrets[name] = s
		}
		v, ok := s.Data[key]
		if !ok || len(v) == 0 {
			return nil, &condition{
				reason:  v1alpha1.ReasonSecretNotFound,
				message: fmt.Sprintf("waiting for key %q in Secret %q", key, name),
			}, nil
		}
		return v, nil, nil
	}
	if s := out.SASL; s != nil {
		u, wait, err := get(s.SecretRef.Name, "username")
		if wait != nil || err != nil {
			return nil, wait, err
		}
		p, wait, err := get(s.SecretRef.Name, "password")
		if wait != nil || err != nil {
			return nil, wait, err
		}
		out.username, out.password = string(u), string(p)
	}
	if t := out.TLS; t != nil {
		for _, f := range []struct {
			ref *v1alpha1.SecretKeyRef
			dst *[]byte
		}{{t.CASecretRef, &out.ca}, {t.CertSecretRef, &out.cert}, {t.KeySecretRef, &out.key}} {
			if f.ref == nil {
				continue
			}
			v, wait, err := get(f.ref.Name, f.ref.Key)
			if wait != nil || err != nil {
				return nil, wait, err
			}
			*f.dst = v
		}
	}
	return out, nil, nil
}

// secretReferrer names an object that references Secrets, for secretCache.
func secretReferrer(kind string, key types.NamespacedName) string {
	return kind + "/" + key.String()
}
