package controllers

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/shard"
)

// fakeLW answers lists from a fixed set of consumers by their bucket
// label, and hands out fake watches, recording every request.
type fakeLW struct {
	mu       sync.Mutex
	objects  []*v1alpha1.EventConsumer
	lists    []metav1.ListOptions
	watches  []metav1.ListOptions
	watchers []*watch.FakeWatcher
}

func (f *fakeLW) ListWithContext(_ context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, opts)
	sel, err := labels.Parse(opts.LabelSelector)
	if err != nil {
		return nil, err
	}
	out := &v1alpha1.EventConsumerList{}
	for _, o := range f.objects {
		if sel.Matches(labels.Set(o.Labels)) {
			out.Items = append(out.Items, *o.DeepCopy())
		}
	}
	return out, nil
}

func (f *fakeLW) WatchWithContext(_ context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watches = append(f.watches, opts)
	w := watch.NewFakeWithChanSize(10, false)
	f.watchers = append(f.watchers, w)
	return w, nil
}

func consumerIn(name, bucket, rv string) *v1alpha1.EventConsumer {
	return &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv,
		Labels: map[string]string{shard.LabelBucket: bucket}}}
}

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("the watch ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return watch.Event{}
}

// TestBucketWatchMovesInPlace: when the owner's buckets change, a watch
// past its initial objects lists the gained and the lost buckets at
// exactly the last version it passed on, passes their objects on as added
// and deleted, and watches the new selection from that version, without
// ending.
func TestBucketWatchMovesInPlace(t *testing.T) {
	lw := &fakeLW{objects: []*v1alpha1.EventConsumer{consumerIn("kept", "1", "10"), consumerIn("gone", "2", "11"), consumerIn("new", "3", "12")}}
	o := newBucketOwner("a")
	o.set(map[string]bool{"1": true, "2": true})
	blw := &bucketListWatch{inner: lw, base: labels.Everything(), owner: o, exemplar: &v1alpha1.EventConsumer{}}
	if _, err := blw.ListWithContext(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := blw.WatchWithContext(context.Background(), metav1.ListOptions{ResourceVersion: "12", AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	lw.watchers[0].Modify(consumerIn("kept", "1", "20"))
	if ev := next(t, w); ev.Type != watch.Modified {
		t.Fatalf("event %v, want the change passed on", ev.Type)
	}

	o.set(map[string]bool{"1": true, "3": true})
	got := map[string]watch.EventType{}
	for range 2 {
		ev := next(t, w)
		got[ev.Object.(*v1alpha1.EventConsumer).Name] = ev.Type
	}
	if got["new"] != watch.Added || got["gone"] != watch.Deleted || len(got) != 2 {
		t.Fatalf("events %v, want new added and gone deleted", got)
	}
	if ev := next(t, w); ev.Type != watch.Bookmark {
		t.Fatalf("event %v, want a bookmark at the version the move was made at", ev.Type)
	}
	lw.mu.Lock()
	lists, watches := lw.lists[1:], lw.watches
	lw.mu.Unlock()
	for _, l := range lists {
		if l.ResourceVersion != "20" || l.ResourceVersionMatch != metav1.ResourceVersionMatchExact {
			t.Errorf("list %+v, want exactly version 20, the last passed on", l)
		}
	}
	if len(watches) != 2 || watches[1].ResourceVersion != "20" || !strings.Contains(watches[1].LabelSelector, "in (1,3)") {
		t.Fatalf("watches %+v, want a second one of buckets 1 and 3 from version 20", watches)
	}
	// The new watch's events come through the same watch.
	lw.watchers[1].Modify(consumerIn("new", "3", "21"))
	if ev := next(t, w); ev.Type != watch.Modified || ev.Object.(*v1alpha1.EventConsumer).Name != "new" {
		t.Fatalf("event %v, want the gained consumer's change", ev)
	}
}

// TestBucketWatchEndsBeforeInitialObjects: a watch that still sends its
// initial objects cannot move in place; it ends with the expired error,
// on which the reflector lists again, and a plain watch of an older
// selection is refused the same way.
func TestBucketWatchEndsBeforeInitialObjects(t *testing.T) {
	lw := &fakeLW{}
	o := newBucketOwner("a")
	blw := &bucketListWatch{inner: lw, base: labels.Everything(), owner: o, exemplar: &v1alpha1.EventConsumer{}}
	initial := true
	w, err := blw.WatchWithContext(context.Background(), metav1.ListOptions{SendInitialEvents: &initial})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	o.set(map[string]bool{"4": true})
	ev := next(t, w)
	if st, ok := ev.Object.(*metav1.Status); ev.Type != watch.Error || !ok || st.Reason != metav1.StatusReasonExpired {
		t.Fatalf("event %+v, want the expired error", ev)
	}
	w2, err := blw.WatchWithContext(context.Background(), metav1.ListOptions{ResourceVersion: "5"})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w2); ev.Type != watch.Error {
		t.Fatalf("a plain watch of a selection never listed gave %v, want the expired error", ev.Type)
	}
}
