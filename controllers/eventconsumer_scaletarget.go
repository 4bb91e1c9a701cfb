package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/scale"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// RBAC of spec.scaleTargetRef: the replicas of Deployments and StatefulSets
// through their scale subresource (get to read, update to write with the
// read resourceVersion, so a change made in between is not overwritten),
// the targets themselves for readiness, managed fields and a target created
// late (list and watch, in the target cache), and HorizontalPodAutoscalers
// to find a conflict. Other kinds are granted by the chart's scaleTargets
// value, never by wildcard.
//
// +kubebuilder:rbac:groups=apps,resources=deployments/scale;statefulsets/scale,verbs=get;update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=list;watch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=list;watch

// indexScaleTarget maps a workload (group/Kind/name) to the consumers whose
// spec.scaleTargetRef names it, in their namespace.
const indexScaleTarget = ".spec.scaleTargetRef"

// targetKey is the index value of a scale target: its group, kind and name.
// The version is left out, as an HPA naming apps/v1 and one naming a later
// version of the same kind scale the same object.
func targetKey(apiVersion, kind, name string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	group := apiVersion
	if err == nil {
		group = gv.Group
	}
	return group + "/" + kind + "/" + name
}

// scaleTargets is what the reconciler needs for spec.scaleTargetRef: a
// scale client, the discovery that tells whether a kind has a scale
// subresource, a cache of its own for the targets (the manager's cache sees
// only Deployments with lagscale's label), and what lagscale last wrote to
// each target, to tell another field manager's change from its own.
type scaleTargets struct {
	scales    scale.ScalesGetter
	mapper    meta.RESTMapper
	discovery discovery.CachedDiscoveryInterface
	cache     cache.Cache
	ctrl      controller.Controller
	mapFn     handler.MapFunc

	mu      sync.Mutex
	watched map[schema.GroupVersionKind]bool
	written map[types.NamespacedName]int32
}

// targetCache runs the scale targets' cache with the manager's caches, on
// every replica: like the other informers, it is warm when a follower takes
// over.
type targetCache struct{ cache.Cache }

// GetCache makes the manager start and sync it before the controllers.
func (c targetCache) GetCache() cache.Cache { return c.Cache }

// setupScaleTargets creates the target cache, the scale client and the
// watches of Deployments and StatefulSets, so that a target created after
// its EventConsumer is noticed at once.
func (r *EventConsumerReconciler) setupScaleTargets(mgr ctrl.Manager) error {
	cfg := mgr.GetConfig()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(dc)
	scales, err := scale.NewForConfig(cfg, mgr.GetRESTMapper(), dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
	if err != nil {
		return fmt.Errorf("scale client: %w", err)
	}
	opts := cache.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), DefaultTransform: trimTarget}
	if len(r.WatchNamespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range r.WatchNamespaces {
			opts.DefaultNamespaces[n] = cache.Config{}
		}
	}
	c, err := cache.New(cfg, opts)
	if err != nil {
		return fmt.Errorf("scale target cache: %w", err)
	}
	if err := mgr.Add(targetCache{c}); err != nil {
		return fmt.Errorf("add scale target cache: %w", err)
	}
	r.targets = &scaleTargets{
		scales: scales, mapper: mgr.GetRESTMapper(), discovery: cached, cache: c,
		watched: map[schema.GroupVersionKind]bool{}, written: map[types.NamespacedName]int32{},
	}
	r.targets.mapFn = r.consumersForTarget
	return nil
}

// startTargetWatches watches Deployments, StatefulSets and
// HorizontalPodAutoscalers for the consumers that name them; other kinds
// are watched when a consumer first names them.
func (r *EventConsumerReconciler) startTargetWatches(c controller.Controller) error {
	r.targets.ctrl = c
	for _, gvk := range []schema.GroupVersionKind{appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithKind("StatefulSet")} {
		if err := r.targets.watch(gvk); err != nil {
			return err
		}
	}
	return nil
}

// watch starts the watch of one target kind, once.
func (t *scaleTargets) watch(gvk schema.GroupVersionKind) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.watched[gvk] {
		return nil
	}
	obj := targetObject(gvk)
	if err := t.ctrl.Watch(source.Kind(t.cache, obj, handler.EnqueueRequestsFromMapFunc(t.mapFn))); err != nil {
		return fmt.Errorf("watch %s: %w", gvk.Kind, err)
	}
	t.watched[gvk] = true
	return nil
}

// targetObject is the form a target takes in the cache: typed for
// Deployments and StatefulSets, whose ready count lagscale reads, metadata
// only for everything else.
func targetObject(gvk schema.GroupVersionKind) client.Object {
	switch gvk {
	case appsv1.SchemeGroupVersion.WithKind("Deployment"):
		return &appsv1.Deployment{}
	case appsv1.SchemeGroupVersion.WithKind("StatefulSet"):
		return &appsv1.StatefulSet{}
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	return m
}

// trimTarget keeps of a target only what lagscale reads (replicas, ready
// count, who manages replicas): the cache holds every Deployment and
// StatefulSet of the watched namespaces, most of them not scaled by
// lagscale.
func trimTarget(in any) (any, error) {
	switch o := in.(type) {
	case *appsv1.Deployment:
		out := &appsv1.Deployment{ObjectMeta: trimMeta(o.ObjectMeta)}
		out.Spec.Replicas = o.Spec.Replicas
		out.Status.Replicas, out.Status.ReadyReplicas = o.Status.Replicas, o.Status.ReadyReplicas
		return out, nil
	case *appsv1.StatefulSet:
		out := &appsv1.StatefulSet{ObjectMeta: trimMeta(o.ObjectMeta)}
		out.Spec.Replicas = o.Spec.Replicas
		out.Status.Replicas, out.Status.ReadyReplicas = o.Status.Replicas, o.Status.ReadyReplicas
		return out, nil
	case *metav1.PartialObjectMetadata:
		return &metav1.PartialObjectMetadata{TypeMeta: o.TypeMeta, ObjectMeta: trimMeta(o.ObjectMeta)}, nil
	}
	return in, nil
}

// trimMeta keeps identity, versions and the managed-fields entries that own
// spec.replicas.
func trimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion, Generation: m.Generation}
	for _, e := range m.ManagedFields {
		if ownsReplicas(e) {
			e.FieldsV1 = metav1.NewFieldsV1(`{"f:spec":{"f:replicas":{}}}`)
			out.ManagedFields = append(out.ManagedFields, e)
		}
	}
	return out
}

// ownsReplicas reports whether a managed-fields entry owns spec.replicas.
func ownsReplicas(e metav1.ManagedFieldsEntry) bool {
	if e.FieldsV1 == nil {
		return false
	}
	var f struct {
		Spec map[string]json.RawMessage `json:"f:spec"`
	}
	if err := json.Unmarshal(e.FieldsV1.GetRawBytes(), &f); err != nil {
		return false
	}
	_, ok := f.Spec["f:replicas"]
	return ok
}

// replicaManagers are the field managers other than lagscale that own a
// target's spec.replicas, in managedFields order.
func replicaManagers(entries []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, e := range entries {
		if e.Manager != FieldManager && ownsReplicas(e) && !slices.Contains(out, e.Manager) {
			out = append(out, e.Manager)
		}
	}
	return out
}

// consumersForTarget maps a workload to the consumers that scale it.
func (r *EventConsumerReconciler) consumersForTarget(ctx context.Context, o client.Object) []reconcile.Request {
	gvk := o.GetObjectKind().GroupVersionKind()
	if gvk.Empty() {
		// Typed objects from the cache carry no kind; ask the scheme.
		gvks, _, err := r.Scheme().ObjectKinds(o)
		if err != nil || len(gvks) == 0 {
			return nil
		}
		gvk = gvks[0]
	}
	return r.consumersNaming(ctx, o.GetNamespace(), targetKey(gvk.GroupVersion().String(), gvk.Kind, o.GetName()))
}

// consumersForHPA maps an HorizontalPodAutoscaler to the consumers that
// scale its target, so a consumer takes over by itself once the HPA is gone.
func (r *EventConsumerReconciler) consumersForHPA(ctx context.Context, o client.Object) []reconcile.Request {
	hpa, ok := o.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return nil
	}
	ref := hpa.Spec.ScaleTargetRef
	return r.consumersNaming(ctx, hpa.Namespace, targetKey(ref.APIVersion, ref.Kind, ref.Name))
}

func (r *EventConsumerReconciler) consumersNaming(ctx context.Context, ns, key string) []reconcile.Request {
	list := &v1alpha1.EventConsumerList{}
	if err := r.List(ctx, list, client.InNamespace(ns), client.MatchingFields{indexScaleTarget: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing EventConsumers for a scale target change failed", "target", key)
		return nil
	}
	return requestsFor(list)
}

// scaleTargetWriteError is a refused write of a target's replicas. The
// caller treats it as it treats a refused Deployment apply: the decision is
// not committed and the write is retried with backoff.
type scaleTargetWriteError struct {
	target string
	err    error
}

func (e *scaleTargetWriteError) Error() string {
	return fmt.Sprintf("update replicas of %s through its scale subresource: %v", e.target, e.err)
}
func (e *scaleTargetWriteError) Unwrap() error { return e.err }

// resolvedTarget is a scale target as one reconcile sees it.
type resolvedTarget struct {
	desc     string // "Deployment orders", for messages
	gvk      schema.GroupVersionKind
	resource schema.GroupResource
	scale    *autoscalingv1.Scale
	cached   client.Object // nil while the cache has not seen it
}

// reconcileScaleTarget is the reconcile of a consumer with
// spec.scaleTargetRef from the point where a handler Deployment would be
// applied: it reads the target's replicas through the scale subresource,
// stops at a conflict or a missing target, decides, and writes the new
// count through the scale subresource under FieldManager. It never
// creates, owns or otherwise changes the target.
func (r *EventConsumerReconciler) reconcileScaleTarget(ctx context.Context, st *reconcileState) (ctrl.Result, error) {
	if r.targets == nil {
		return ctrl.Result{}, fmt.Errorf("scale targets are not set up: the reconciler must be started with SetupWithManager")
	}
	ec := st.ec
	t, wait, err := r.resolveTarget(ctx, ec)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wait != nil {
		if wait.reason == v1alpha1.ReasonScaleTargetUnsupported {
			// A CRD may gain a scale subresource; look again now and then.
			st.stalled = wait
			return ctrl.Result{RequeueAfter: waitRequeue}, nil
		}
		st.wait = wait
		if st.transitionedTo(wait.reason) {
			// A conflict needs a person (delete the HPA); a missing target
			// is waited for, like a missing Secret.
			eventType, reason := EventNormalType, v1alpha1.EventWaiting
			if wait.reason == v1alpha1.ReasonScaleTargetConflict {
				eventType, reason = EventWarningType, v1alpha1.ReasonScaleTargetConflict
			}
			r.event(ctx, ec, eventType, reason, wait.message)
		}
		ctrl.LoggerFrom(ctx).Info("Waiting for the scale target", "reason", wait.reason, "detail", wait.message)
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}

	key := client.ObjectKeyFromObject(ec)
	r.warnOverride(ctx, st, t)

	ready := r.targetReady(st, t)
	st.targetSelector = &t.scale.Status.Selector
	st.current = replicaView(t.scale.Spec.Replicas, t.scale.Status.Replicas, ready)
	requeue := r.decideReplicas(st)

	if st.desired != t.scale.Spec.Replicas {
		scales := r.targets.scales.Scales(ec.Namespace)
		err := writeReplicas(t.scale, st.desired,
			func() (*autoscalingv1.Scale, error) {
				return scales.Get(ctx, t.resource, ec.Spec.ScaleTargetRef.Name, metav1.GetOptions{})
			},
			func(s *autoscalingv1.Scale) error {
				_, err := scales.Update(ctx, t.resource, s, metav1.UpdateOptions{FieldManager: FieldManager})
				return err
			})
		if err != nil {
			return ctrl.Result{}, &scaleTargetWriteError{target: t.desc, err: err}
		}
		ctrl.LoggerFrom(ctx).Info("Scaled target", "target", t.desc, "from", t.scale.Spec.Replicas, "to", st.desired)
	}
	r.commitDecision(ctx, st)
	r.targets.mu.Lock()
	r.targets.written[key] = st.desired
	r.targets.mu.Unlock()
	st.applied = replicaView(st.desired, t.scale.Status.Replicas, ready)
	// Read fresh each reconcile, the scale carries no generation to wait
	// for: the scaler decides from what it reads.
	st.scaler.Applied(st.desired, 0)
	ctrl.LoggerFrom(ctx).V(1).Info("Reconciled", "eventConsumer", klog.KObj(ec), "target", t.desc, "replicas", st.desired)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// writeConflictRetries is how often a write refused for a stale
// resourceVersion is tried again.
const writeConflictRetries = 3

// writeReplicas writes desired replicas over read, the scale the decision
// was made from. The update carries read's resourceVersion, so a write
// after anyone else's change is refused (Conflict). Most such changes are
// not to replicas (the workload's controller writes its status, a rollout
// changes the template): then the write is tried again on a fresh read.
// When replicas themselves moved, the conflict is returned, so that the
// next reconcile decides from the new count instead of overwriting it.
func writeReplicas(read *autoscalingv1.Scale, desired int32, get func() (*autoscalingv1.Scale, error), update func(*autoscalingv1.Scale) error) error {
	s := read.DeepCopy()
	for attempt := 1; ; attempt++ {
		s.Spec.Replicas = desired
		err := update(s)
		if err == nil || !apierrors.IsConflict(err) || attempt == writeConflictRetries {
			return err
		}
		fresh, gerr := get()
		if gerr != nil {
			return gerr
		}
		if fresh.Spec.Replicas != read.Spec.Replicas {
			return err
		}
		s = fresh
	}
}

// replicaView carries a target's replica counts in the shape the decision
// and the status read them from (a Deployment's spec and status), so
// that both work the same for every kind of target.
func replicaView(spec, replicas, ready int32) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	d.Spec.Replicas = &spec
	d.Status.Replicas, d.Status.ReadyReplicas = replicas, ready
	return d
}

// resolveTarget maps spec.scaleTargetRef to a resource with a scale
// subresource, makes sure its kind is watched, reads its scale and checks
// that nothing else scales it. A non-nil condition says why lagscale must
// wait (not found, conflict) or cannot work (unsupported).
func (r *EventConsumerReconciler) resolveTarget(ctx context.Context, ec *v1alpha1.EventConsumer) (*resolvedTarget, *condition, error) {
	ref := ec.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, &condition{reason: v1alpha1.ReasonScaleTargetUnsupported, message: fmt.Sprintf("scaleTargetRef.apiVersion %q: %v", ref.APIVersion, err)}, nil
	}
	gvk := gv.WithKind(ref.Kind)
	desc := ref.Kind + " " + ref.Name
	mapping, err := r.targets.mapper.RESTMapping(gvk.GroupKind(), gv.Version)
	if meta.IsNoMatchError(err) {
		return nil, &condition{reason: v1alpha1.ReasonScaleTargetNotFound, message: fmt.Sprintf(
			"the API server does not serve kind %s in %s: install its CRD, or correct scaleTargetRef (lagscale continues by itself when it is served)", ref.Kind, ref.APIVersion)}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("map %s: %w", gvk, err)
	}
	ok, err := r.targets.hasScale(mapping.Resource)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, &condition{reason: v1alpha1.ReasonScaleTargetUnsupported, message: fmt.Sprintf(
			"kind %s (%s) has no scale subresource, so lagscale cannot set its replicas: point scaleTargetRef at a Deployment, a StatefulSet or a resource with subresources.scale", ref.Kind, mapping.Resource.GroupResource())}, nil
	}
	if err := r.targets.watch(gvk); err != nil {
		return nil, nil, err
	}
	t := &resolvedTarget{desc: desc, gvk: gvk, resource: mapping.Resource.GroupResource()}
	t.scale, err = r.targets.scales.Scales(ec.Namespace).Get(ctx, t.resource, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &condition{reason: v1alpha1.ReasonScaleTargetNotFound, message: fmt.Sprintf(
			"%s does not exist in namespace %s: deploy it (lagscale continues by itself when it appears), or correct scaleTargetRef", desc, ec.Namespace)}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get scale of %s: %w", desc, err)
	}
	if hpa, err := r.conflictingHPA(ctx, ec.Namespace, gvk, ref.Name); err != nil {
		return nil, nil, err
	} else if hpa != nil {
		by := ""
		if so := hpa.Labels["scaledobject.keda.sh/name"]; so != "" {
			by = fmt.Sprintf(" (made by KEDA ScaledObject %s)", so)
		}
		return nil, &condition{reason: v1alpha1.ReasonScaleTargetConflict, message: fmt.Sprintf(
			"HorizontalPodAutoscaler %s%s scales %s too: lagscale writes nothing while it exists; delete it (for KEDA, delete the ScaledObject) and lagscale takes over by itself", hpa.Name, by, desc)}, nil
	}
	obj := targetObject(gvk)
	// A Get waits for the kind's informer to sync; bounded, so that an
	// informer that cannot sync is an error with a condition and a
	// backoff, not a reconcile worker held forever.
	getCtx, cancel := context.WithTimeout(ctx, targetCacheWait)
	defer cancel()
	if err := r.targets.cache.Get(getCtx, client.ObjectKey{Namespace: ec.Namespace, Name: ref.Name}, obj); err == nil {
		t.cached = obj
	} else if !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("read %s from the target cache: %w", desc, err)
	}
	return t, nil, nil
}

// targetCacheWait bounds a read of the target cache, which waits for a
// newly watched kind's informer to sync.
const targetCacheWait = 10 * time.Second

// hasScale reports whether a resource has a scale subresource, from
// discovery. A miss is looked up once more after dropping the cached
// discovery, since a CRD may have been installed or changed since.
func (t *scaleTargets) hasScale(gvr schema.GroupVersionResource) (bool, error) {
	find := func() (bool, error) {
		list, err := t.discovery.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
		if err != nil {
			return false, err
		}
		for _, r := range list.APIResources {
			if r.Name == gvr.Resource+"/scale" {
				return true, nil
			}
		}
		return false, nil
	}
	ok, err := find()
	if err == nil && ok {
		return true, nil
	}
	t.discovery.Invalidate()
	ok, err = find()
	if err != nil {
		return false, fmt.Errorf("discover the subresources of %s: %w", gvr.GroupResource(), err)
	}
	return ok, nil
}

// conflictingHPA returns an HorizontalPodAutoscaler of the namespace that
// scales the same workload, or nil.
func (r *EventConsumerReconciler) conflictingHPA(ctx context.Context, ns string, gvk schema.GroupVersionKind, name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	list := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := r.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list HorizontalPodAutoscalers: %w", err)
	}
	want := targetKey(gvk.GroupVersion().String(), gvk.Kind, name)
	for i := range list.Items {
		ref := list.Items[i].Spec.ScaleTargetRef
		if targetKey(ref.APIVersion, ref.Kind, ref.Name) == want {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// targetReady is the target's ready replica count: its own for a
// Deployment or StatefulSet; for other kinds, whose scale subresource has
// no ready count, the group's members.
func (r *EventConsumerReconciler) targetReady(st *reconcileState, t *resolvedTarget) int32 {
	switch o := t.cached.(type) {
	case *appsv1.Deployment:
		return o.Status.ReadyReplicas
	case *appsv1.StatefulSet:
		return o.Status.ReadyReplicas
	}
	if st.lag != nil {
		return int32(st.lag.snap.Members)
	}
	return 0
}

// warnOverride records a Warning event when the target's replicas differ
// from what lagscale last wrote and another field manager owns them now:
// a GitOps tool re-applying replicas, or a person scaling by hand. The
// event names the manager, so the user knows which manifest to fix. Once
// said, the new count is taken as the one lagscale last saw, so the same
// change is not reported twice.
func (r *EventConsumerReconciler) warnOverride(ctx context.Context, st *reconcileState, t *resolvedTarget) {
	key := client.ObjectKeyFromObject(st.ec)
	r.targets.mu.Lock()
	last, ok := r.targets.written[key]
	r.targets.mu.Unlock()
	// Only a cached target at the version just read tells who made this
	// change; an older one may name whoever managed replicas before.
	if !ok || last == t.scale.Spec.Replicas || t.cached == nil || t.cached.GetResourceVersion() != t.scale.ResourceVersion {
		return
	}
	managers := replicaManagers(t.cached.GetManagedFields())
	if len(managers) == 0 {
		// The cache has not seen the change yet; its update event
		// brings this consumer back.
		return
	}
	r.event(ctx, st.ec, EventWarningType, v1alpha1.EventReplicasOverridden, fmt.Sprintf(
		"replicas of %s changed from %d to %d by field manager %s after lagscale set them: remove replicas from the manifests that tool applies (as for an HorizontalPodAutoscaler), or it and lagscale take turns",
		t.desc, last, t.scale.Spec.Replicas, strings.Join(managers, ", ")))
	r.targets.mu.Lock()
	r.targets.written[key] = t.scale.Spec.Replicas
	r.targets.mu.Unlock()
}

// forgetTarget drops what lagscale remembers of a deleted consumer's
// target; the target itself is left as it is.
func (t *scaleTargets) forget(key types.NamespacedName) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written, key)
}
