package controllers

import (
	"context"
	"maps"
	"net/http"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
	"github.com/lagscale/lagscale/internal/shard"
)

// bucketOwner is one replica's side of the bucket table: the buckets it
// may write, the guard that keeps its writes inside them, and the
// selector its caches of EventConsumers and Deployments list and watch
// with.
//
// Each reconcile holds the guard for reading from before it reads its
// consumer to after its last write, and writes only if it owns the
// consumer's bucket. Giving buckets up takes the guard for writing: it
// waits for the reconciles in flight, and no write of a given-up bucket
// follows. Only then does the replica acknowledge the hand-over in the
// table.
type bucketOwner struct {
	identity string

	guard sync.RWMutex
	owned map[string]bool // under guard

	mu       sync.Mutex
	selected map[string]bool
	// generation counts the selections; a watch that would start on a
	// list of an older one is refused, so the reflector lists again.
	generation int
	watches    map[*bucketWatch]struct{}
}

func newBucketOwner(identity string) *bucketOwner {
	return &bucketOwner{identity: identity, owned: map[string]bool{}, selected: map[string]bool{}, watches: map[*bucketWatch]struct{}{}}
}

// enter holds the guard for reading; call the returned func after the
// last write.
func (o *bucketOwner) enter() func() {
	o.guard.RLock()
	return o.guard.RUnlock
}

// owns says whether the replica may write a consumer of bucket. Call it
// between enter and its release.
func (o *bucketOwner) owns(bucket string) bool { return bucket != "" && o.owned[bucket] }

// set makes want the buckets the replica may write and its caches
// select. Buckets it loses stop being written before set returns; the
// caches' watches then move to the new selection, which drops the lost
// buckets' objects (their reconciles find them gone) and adds the gained
// ones'. It reports whether anything changed.
//
// Only the table's follower calls set, so it reads owned without the
// guard; taking the guard for writing when nothing changed would stop
// every reconcile once a second.
func (o *bucketOwner) set(want map[string]bool) bool {
	if maps.Equal(o.owned, want) {
		return false
	}
	o.guard.Lock()
	o.owned = maps.Clone(want)
	o.guard.Unlock()
	o.mu.Lock()
	o.selected = maps.Clone(want)
	o.generation++
	ws := make([]*bucketWatch, 0, len(o.watches))
	for w := range o.watches {
		ws = append(ws, w)
	}
	o.mu.Unlock()
	for _, w := range ws {
		w.restart()
	}
	return true
}

// ownedCount is how many buckets the replica owns.
func (o *bucketOwner) ownedCount() int {
	o.guard.RLock()
	defer o.guard.RUnlock()
	return len(o.owned)
}

// selection returns the buckets the caches select and the selection's
// generation.
func (o *bucketOwner) selection() (map[string]bool, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.selected, o.generation
}

// newInformer is the cache's informer constructor (cache.Options.NewInformer):
// the informers of EventConsumers and Deployments list and watch the
// replica's buckets only; the others are as controller-runtime makes
// them.
func (o *bucketOwner) newInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	var base labels.Selector
	switch obj.(type) {
	case *v1alpha1.EventConsumer:
		base = labels.Everything()
	case *appsv1.Deployment:
		base = labels.SelectorFromSet(labels.Set{deploy.LabelManagedBy: deploy.ManagedBy})
	}
	if base != nil {
		lw = &bucketListWatch{inner: toolscache.ToListerWatcherWithContext(lw), base: base, owner: o, exemplar: obj}
	}
	return toolscache.NewSharedIndexInformer(lw, obj, resync, indexers)
}

// bucketListWatch lists and watches with the owner's current selection
// added to base. When the selection changes, each watch it made moves to
// the new one in place (bucketWatch.switchTo), so the informer's
// reflector neither lists everything again nor backs off.
type bucketListWatch struct {
	inner    toolscache.ListerWatcherWithContext
	base     labels.Selector
	owner    *bucketOwner
	exemplar runtime.Object

	mu sync.Mutex
	// listed is the generation of the selection the informer's store
	// holds: that of the last full list (a list, or a watch that sends the
	// initial objects), or of the last switch of a watch.
	listed int
}

// selector is base and the buckets.
func (lw *bucketListWatch) selector(buckets map[string]bool) string {
	req, err := labels.NewRequirement(shard.LabelBucket, selection.In, shard.Selector(buckets))
	if err != nil {
		// Bucket numbers and "none" are valid label values.
		panic(err)
	}
	return lw.base.Add(*req).String()
}

func (lw *bucketListWatch) setListed(gen int) {
	lw.mu.Lock()
	lw.listed = gen
	lw.mu.Unlock()
}

func (lw *bucketListWatch) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	buckets, gen := lw.owner.selection()
	opts.LabelSelector = lw.selector(buckets)
	out, err := lw.inner.ListWithContext(ctx, opts)
	if err == nil {
		lw.setListed(gen)
	}
	return out, err
}

func (lw *bucketListWatch) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	buckets, gen := lw.owner.selection()
	opts.LabelSelector = lw.selector(buckets)
	initial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	lw.mu.Lock()
	stale := !initial && lw.listed != gen
	lw.mu.Unlock()
	if stale {
		// The objects of the buckets gained since the store was filled
		// would never come: a watch only brings changes.
		return expiredWatch(), nil
	}
	inner, err := lw.inner.WatchWithContext(ctx, opts)
	if err != nil {
		return nil, err
	}
	if initial {
		lw.setListed(gen)
	}
	w := &bucketWatch{lw: lw, ctx: ctx, opts: opts, inner: inner, buckets: buckets, ended: !initial,
		out: make(chan watch.Event), stopped: make(chan struct{}), restarts: make(chan struct{}, 1)}
	lw.owner.mu.Lock()
	lw.owner.watches[w] = struct{}{}
	regen := lw.owner.generation != gen
	lw.owner.mu.Unlock()
	if regen {
		// The selection changed while the watch started.
		w.restart()
	}
	go w.run()
	return w, nil
}

func (lw *bucketListWatch) List(opts metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), opts)
}

func (lw *bucketListWatch) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), opts)
}

// bucketWatch passes a watch's events on. When the selection changes, it
// moves to the new one without a gap: at the last resource version it
// passed on, it lists the buckets gained and those lost (at exactly that
// version), opens a watch of the new selection from it, and passes on the
// gained objects as added and the lost ones as deleted before the new
// watch's events. When it cannot (before the initial objects have all
// come, or when a request fails), it ends with the error the API server
// gives a watch whose resource version is too old, and the reflector
// lists again.
type bucketWatch struct {
	lw      *bucketListWatch
	ctx     context.Context
	opts    metav1.ListOptions
	inner   watch.Interface
	buckets map[string]bool
	// ended: the initial objects have all come (or were not asked for);
	// lastRV: the resource version of the last event passed on.
	ended  bool
	lastRV string

	out      chan watch.Event
	stopped  chan struct{}
	restarts chan struct{}
	stopOnce sync.Once
}

func (w *bucketWatch) run() {
	defer close(w.out)
	defer func() { w.inner.Stop() }()
	for {
		select {
		case ev, ok := <-w.inner.ResultChan():
			if !ok {
				return
			}
			w.note(ev)
			if !w.send(ev) {
				return
			}
		case <-w.restarts:
			if !w.switchTo() {
				w.send(expiredEvent())
				return
			}
		case <-w.stopped:
			return
		}
	}
}

// note keeps the resource version of ev and whether the initial objects
// have all come.
func (w *bucketWatch) note(ev watch.Event) {
	if ev.Type == watch.Error {
		return
	}
	m, err := meta.Accessor(ev.Object)
	if err != nil {
		return
	}
	if rv := m.GetResourceVersion(); rv != "" {
		w.lastRV = rv
	}
	if ev.Type == watch.Bookmark && m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
		w.ended = true
	}
}

// send passes ev on, or reports false once the watch is stopped.
func (w *bucketWatch) send(ev watch.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-w.stopped:
		return false
	}
}

// switchTo moves the watch to the owner's current selection; false when
// it cannot.
func (w *bucketWatch) switchTo() bool {
	if !w.ended || w.lastRV == "" {
		return false
	}
	buckets, gen := w.lw.owner.selection()
	gained, lost := map[string]bool{}, map[string]bool{}
	for b := range buckets {
		if !w.buckets[b] {
			gained[b] = true
		}
	}
	for b := range w.buckets {
		if !buckets[b] {
			lost[b] = true
		}
	}
	var events []watch.Event
	for _, part := range []struct {
		buckets map[string]bool
		typ     watch.EventType
	}{{gained, watch.Added}, {lost, watch.Deleted}} {
		if len(part.buckets) == 0 {
			continue
		}
		list, err := w.lw.inner.ListWithContext(w.ctx, metav1.ListOptions{LabelSelector: w.lw.selector(part.buckets),
			ResourceVersion: w.lastRV, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		if err != nil {
			return false
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return false
		}
		for _, item := range items {
			events = append(events, watch.Event{Type: part.typ, Object: item})
		}
	}
	opts := w.opts
	opts.LabelSelector = w.lw.selector(buckets)
	opts.ResourceVersion, opts.ResourceVersionMatch, opts.SendInitialEvents = w.lastRV, "", nil
	inner, err := w.lw.inner.WatchWithContext(w.ctx, opts)
	if err != nil {
		return false
	}
	w.inner.Stop()
	w.inner, w.buckets = inner, buckets
	w.lw.setListed(gen)
	for _, ev := range events {
		if !w.send(ev) {
			return true
		}
	}
	if w.opts.AllowWatchBookmarks {
		// The objects above carry older versions than lastRV; the
		// reflector resumes from lastRV if this watch ends now.
		bm := w.lw.exemplar.DeepCopyObject()
		if m, err := meta.Accessor(bm); err == nil {
			m.SetResourceVersion(w.lastRV)
			w.send(watch.Event{Type: watch.Bookmark, Object: bm})
		}
	}
	return true
}

// restart asks the watch to move to the owner's current selection.
func (w *bucketWatch) restart() {
	select {
	case w.restarts <- struct{}{}:
	default:
	}
}

// ResultChan implements watch.Interface.
func (w *bucketWatch) ResultChan() <-chan watch.Event { return w.out }

// Stop implements watch.Interface.
func (w *bucketWatch) Stop() {
	w.stopOnce.Do(func() {
		close(w.stopped)
		w.lw.owner.mu.Lock()
		delete(w.lw.owner.watches, w)
		w.lw.owner.mu.Unlock()
	})
}

func expiredEvent() watch.Event {
	return watch.Event{Type: watch.Error, Object: &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired,
		Message: "the replica's buckets changed: list again",
	}}
}

// expiredWatch is a watch that ends at once with expiredEvent.
func expiredWatch() watch.Interface {
	ch := make(chan watch.Event, 1)
	ch <- expiredEvent()
	close(ch)
	return watch.NewProxyWatcher(ch)
}
