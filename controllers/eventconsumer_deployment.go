package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
	"github.com/lagscale/lagscale/internal/shard"
)

// applyDeployment builds the desired Deployment and server-side applies it
// under FieldManager, so lagscale owns exactly the fields it sets: an edit of
// one of them is reverted, anything else people or tools add survives.
func (r *EventConsumerReconciler) applyDeployment(ctx context.Context, st *reconcileState) error {
	ec := st.ec
	desired, err := deploy.Build(ec, st.conn.Connection, st.desired)
	if err != nil {
		return &invalidSpecError{err: err}
	}
	if r.Shard != nil {
		// On the Deployment only, not its pods: the owner's cache selects
		// on it. It never changes, so a move neither rolls the pods nor
		// needs an apply.
		l := maps.Clone(desired.Labels)
		l[shard.LabelBucket] = ec.Labels[shard.LabelBucket]
		desired.Labels = l
	}
	ac, err := toApplyConfiguration(desired)
	if err != nil {
		return fmt.Errorf("convert Deployment: %w", err)
	}

	// An apply that would change nothing still costs an API call; with
	// thousands of consumers polled every few seconds that adds up. Skip it
	// when the Deployment is at the generation we last applied (nobody
	// edited its spec since) and the desired object is unchanged. The
	// fingerprint also goes on the Deployment, so that a replica that did
	// not make the last apply (after a restart, a leader change or a
	// shard move) skips it too when nobody touched the spec since.
	key := client.ObjectKeyFromObject(ec)
	fingerprint := fingerprintOf(ac)
	ac.WithAnnotations(map[string]string{AnnotationApplied: hex.EncodeToString(fingerprint[:])})
	if cur := st.current; cur != nil {
		if !r.applied.known(key) && appliedUntouched(cur, fingerprint) {
			r.applied.record(key, cur.Generation, fingerprint)
		}
		if r.applied.unchanged(key, cur.Generation, fingerprint) {
			st.applied = cur
			return nil
		}
	}

	if err := r.Apply(ctx, ac, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return &deploymentWriteError{err: err}
	}
	// Apply fills ac with the API server's answer. Reading it back from the
	// cache instead could return the object from before the apply, record
	// its old generation, and cost a second, needless apply.
	applied, err := fromApplyConfiguration(ac)
	if err != nil {
		return fmt.Errorf("read applied Deployment: %w", err)
	}
	r.applied.record(key, applied.Generation, fingerprint)
	if st.current == nil {
		r.event(ctx, ec, EventNormalType, v1alpha1.EventDeployment, fmt.Sprintf("Created Deployment %s with %d replicas", ec.Name, st.desired))
	}
	st.applied = applied
	return nil
}

// toApplyConfiguration turns a typed Deployment into an apply
// configuration. Both share one JSON shape; status is never applied.
func toApplyConfiguration(d *appsv1.Deployment) (*appsv1ac.DeploymentApplyConfiguration, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	ac := &appsv1ac.DeploymentApplyConfiguration{}
	if err := json.Unmarshal(raw, ac); err != nil {
		return nil, err
	}
	ac.Status = nil
	ac.CreationTimestamp = nil
	if ac.Spec != nil && ac.Spec.Template != nil {
		ac.Spec.Template.CreationTimestamp = nil
	}
	return ac, nil
}

// fromApplyConfiguration is the inverse of toApplyConfiguration, for the
// server's answer to an apply.
func fromApplyConfiguration(ac *appsv1ac.DeploymentApplyConfiguration) (*appsv1.Deployment, error) {
	raw, err := json.Marshal(ac)
	if err != nil {
		return nil, err
	}
	d := &appsv1.Deployment{}
	return d, json.Unmarshal(raw, d)
}

// fingerprintOf hashes the desired object, so the cache holds 32 bytes per
// consumer rather than the whole Deployment.
func fingerprintOf(ac *appsv1ac.DeploymentApplyConfiguration) [sha256.Size]byte {
	raw, _ := json.Marshal(ac)
	return sha256.Sum256(raw)
}

// AnnotationApplied is, on a handler Deployment, the fingerprint of the
// object lagscale last applied.
const AnnotationApplied = "lagscale.dev/applied"

// appliedUntouched reports whether d is as lagscale's last apply left it,
// for a replica that did not make that apply: it carries fingerprint, and
// no field manager but lagscale's apply has written its spec (the
// replicas through the scale subresource included) since that apply. Its
// managed fields are kept in the cache as who wrote and when
// (trimDeploymentFields), to a second: a write in the same second counts
// as after. Writes of metadata only (the Deployment controller's revision
// annotation) and of status do not count.
func appliedUntouched(d *appsv1.Deployment, fingerprint [sha256.Size]byte) bool {
	if d.Annotations[AnnotationApplied] != hex.EncodeToString(fingerprint[:]) {
		return false
	}
	var ours *metav1.Time
	for _, e := range d.ManagedFields {
		if isOurApply(e) {
			ours = e.Time
		}
	}
	if ours == nil {
		return false
	}
	for _, e := range d.ManagedFields {
		if isOurApply(e) || !writesSpec(e) {
			continue
		}
		if e.Time == nil || !e.Time.Before(ours) {
			return false
		}
	}
	return true
}

func isOurApply(e metav1.ManagedFieldsEntry) bool {
	return e.Manager == FieldManager && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == ""
}

// writesSpec reports whether a managed-fields entry owns anything under
// spec.
func writesSpec(e metav1.ManagedFieldsEntry) bool {
	if e.FieldsV1 == nil {
		return false
	}
	var f struct {
		Spec json.RawMessage `json:"f:spec"`
	}
	return json.Unmarshal(e.FieldsV1.GetRawBytes(), &f) == nil && f.Spec != nil
}

// trimDeploymentFields keeps of a cached Deployment's managed fields only
// who wrote, how and when, and whether they own anything under spec, for
// appliedUntouched: the field sets are most of an object's size.
func trimDeploymentFields(entries []metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, e := range entries {
		spec := writesSpec(e)
		e.FieldsV1 = nil
		if spec {
			e.FieldsV1 = metav1.NewFieldsV1(`{"f:spec":{}}`)
		}
		out = append(out, e)
	}
	return out
}

// appliedCache remembers, per consumer, the Deployment generation and the
// desired object of the last apply, or of the apply found on the
// Deployment (appliedUntouched) after a restart.
type appliedCache struct {
	mu sync.Mutex
	m  map[types.NamespacedName]appliedEntry
}

type appliedEntry struct {
	generation  int64
	fingerprint [sha256.Size]byte
}

func newAppliedCache() *appliedCache {
	return &appliedCache{m: map[types.NamespacedName]appliedEntry{}}
}

func (c *appliedCache) known(key types.NamespacedName) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[key]
	return ok
}

func (c *appliedCache) unchanged(key types.NamespacedName, generation int64, fingerprint [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return ok && e.generation == generation && e.fingerprint == fingerprint
}

func (c *appliedCache) record(key types.NamespacedName, generation int64, fingerprint [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = appliedEntry{generation: generation, fingerprint: fingerprint}
}

func (c *appliedCache) delete(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}
