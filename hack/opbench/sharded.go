package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/controllers"
	"github.com/lagscale/lagscale/internal/shard"
	"github.com/lagscale/lagscale/internal/testenv"
)

// table reads the bucket table of the bench's operator.
func (b *bench) table(ctx context.Context) (shard.Table, error) {
	cm := &corev1.ConfigMap{}
	if err := b.c.Get(ctx, client.ObjectKey{Namespace: shardNamespace, Name: controllers.ShardTableName(shardGroup)}, cm); err != nil {
		return nil, fmt.Errorf("read the bucket table: %w", err)
	}
	return shard.Decode(cm.Data)
}

// owners maps each consumer ("ns/name") to the replica that owns its
// bucket ("" while it has none), and counts each replica's Deployments.
func (b *bench) owners(ctx context.Context) (map[string]string, map[string]int, error) {
	t, err := b.table(ctx)
	if err != nil {
		return nil, nil, err
	}
	owner := map[string]string{}
	deployments := map[string]int{}
	for _, ns := range []string{"bench", "probes"} {
		list := &v1alpha1.EventConsumerList{}
		if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, nil, err
		}
		for _, ec := range list.Items {
			owner[ns+"/"+ec.Name] = t.OwnerOf(ec.Labels)
		}
		ds := &appsv1.DeploymentList{}
		if err := b.c.List(ctx, ds, client.InNamespace(ns)); err != nil {
			return nil, nil, err
		}
		for _, d := range ds.Items {
			deployments[t.OwnerOf(d.Labels)]++
		}
	}
	return owner, deployments, nil
}

// killOne prints each replica's share of the consumers (what its cache
// holds: its EventConsumers and Deployments are selected by that label),
// then kills one replica as a crash would and measures how long its
// consumers take to move (their buckets given to the others in the
// table), and to be decided again by their new
// owners: until each has a lag series on a survivor's /metrics, which the
// owner sets when it decides on the consumer's snapshot. The victim is a
// replica that does not run the sharder, or with sharder the one that
// does: then the sharder moves to a survivor first.
func (b *bench) killOne(ctx context.Context, sharder bool) error {
	victim, moved, err := b.pickVictim(ctx, sharder)
	if err != nil {
		return err
	}
	before := map[*managerProc]string{}
	for _, m := range b.managers {
		if m.exited() || m == victim {
			continue
		}
		if before[m], err = scrape(m, b.token); err != nil {
			return err
		}
	}
	atKill := b.sampleCPU()
	latKill, err := b.readAPILatency()
	if err != nil {
		return err
	}
	killed := time.Now()
	victim.kill()
	// The process is gone: its Lease's last renewal says when it expires.
	lease := &coordinationv1.Lease{}
	if err := b.c.Get(ctx, client.ObjectKey{Namespace: shardNamespace, Name: "lagscale-shard-" + victim.name}, lease); err != nil {
		return fmt.Errorf("read the killed replica's Lease: %w", err)
	}
	expiry := killed
	if r, d := lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds; r != nil && d != nil {
		expiry = r.Add(time.Duration(*d) * time.Second)
	}
	// Relabelling and deciding are watched apart, each as often as its
	// own reads allow, so that a slow scrape does not delay the other.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	relabelled := make(chan cpuSample, 1)
	var curveMu sync.Mutex
	var curve []string
	go func() {
		for wctx.Err() == nil {
			now, err := b.labels(wctx)
			if err == nil {
				curveMu.Lock()
				curve = append(curve, fmt.Sprintf("%s %d", time.Since(killed).Round(time.Second), len(moved)-leftToMove(moved, now, victim.name)))
				curveMu.Unlock()
			}
			if err == nil && allMoved(moved, now, victim.name) {
				relabelled <- b.sampleCPU()
				return
			}
			time.Sleep(time.Second)
		}
	}()
	var decided time.Time
	var atDecided cpuSample
	var decidedCurve []string
	for wctx.Err() == nil && decided.IsZero() {
		time.Sleep(time.Second)
		live, err := b.decidedOn()
		if err != nil {
			return err
		}
		left := 0
		for _, k := range moved {
			if !live[k] {
				left++
			}
		}
		decidedCurve = append(decidedCurve, fmt.Sprintf("%s %d", time.Since(killed).Round(time.Second), len(moved)-left))
		if left == 0 {
			atDecided = b.sampleCPU()
			decided = atDecided.at
		}
	}
	if decided.IsZero() {
		return fmt.Errorf("the %d consumers of killed replica %s were not all decided again by the others within 5 minutes", len(moved), victim.name)
	}
	var atRelabel cpuSample
	select {
	case atRelabel = <-relabelled:
	case <-wctx.Done():
		return fmt.Errorf("the %d consumers of killed replica %s were decided on but their buckets not all given to others within 5 minutes", len(moved), victim.name)
	}
	fmt.Printf("killed %s: its %d consumers decided again by the others within %s of the kill; its Lease expired %s after the kill, the consumers' buckets were given to the others %s after that (each checked every second)\n",
		victim.name, len(moved), decided.Sub(killed).Round(100*time.Millisecond), expiry.Sub(killed).Round(100*time.Millisecond),
		atRelabel.at.Sub(expiry).Round(100*time.Millisecond))
	curveMu.Lock()
	fmt.Printf("  moved by time after the kill: %s\n", strings.Join(curve, ", "))
	curveMu.Unlock()
	fmt.Printf("  decided again by time after the kill: %s\n", strings.Join(decidedCurve, ", "))
	fmt.Printf("  kill to moved: %s\n", cpuLine(atKill, atRelabel))
	for m, was := range before {
		if after, err := scrape(m, b.token); err == nil {
			fmt.Printf("  %s from the kill to the end: %s\n", m.name, queuesLine(was, after))
		}
	}
	if latEnd, err := b.readAPILatency(); err == nil {
		fmt.Printf("  API requests from the kill to the end: %s\n", latencyLine(latKill, latEnd))
	}
	if atDecided.at.After(atRelabel.at) {
		fmt.Printf("  moved to decided: %s\n", cpuLine(atRelabel, atDecided))
	}
	return nil
}

// watchLabels starts a metadata-only watch of the consumers, which
// labels reads. Listing them from the API server every second instead
// costs it a conversion of every consumer each time (hundreds of
// milliseconds at 3,000), which the bench would then measure as part of
// the move.
func (b *bench) watchLabels(ctx context.Context, env *testenv.Env) (stop func(), err error) {
	// The cache logs through controller-runtime's logger; the bench
	// prints its own findings and has nothing to add from it.
	log.SetLogger(logr.Discard())
	c, err := cache.New(env.Admin, cache.Options{Scheme: b.c.Scheme(), DefaultNamespaces: map[string]cache.Config{"bench": {}, "probes": {}}})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { _ = c.Start(cctx) }()
	// Ask for the informer now, so that the first kill does not wait for it.
	if _, err := c.GetInformer(cctx, ecMetadata()); err != nil {
		cancel()
		return nil, fmt.Errorf("watch the consumers' labels: %w", err)
	}
	if !c.WaitForCacheSync(cctx) {
		cancel()
		return nil, fmt.Errorf("watch the consumers' labels: the cache did not sync")
	}
	b.shardLabels = c
	return cancel, nil
}

func ecMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("EventConsumer"))
	return m
}

// labels maps each consumer ("ns/name") to the owner of its bucket: its
// bucket label from the watch that watchLabels started, and the bucket
// table read now.
func (b *bench) labels(ctx context.Context) (map[string]string, error) {
	t, err := b.table(ctx)
	if err != nil {
		return nil, err
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("EventConsumerList"))
	if err := b.shardLabels.List(ctx, list); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range list.Items {
		out[m.Namespace+"/"+m.Name] = t.OwnerOf(m.Labels)
	}
	return out, nil
}

func allMoved(keys []string, owner map[string]string, gone string) bool {
	return leftToMove(keys, owner, gone) == 0
}

// leftToMove counts the keys still unlabelled or on the gone owner.
func leftToMove(keys []string, owner map[string]string, gone string) int {
	n := 0
	for _, k := range keys {
		if o := owner[k]; o == "" || o == gone {
			n++
		}
	}
	return n
}

// decidedOn is the set of consumers with a lag series on a live manager.
func (b *bench) decidedOn() (map[string]bool, error) {
	out := map[string]bool{}
	err := b.scrapeLive(func(_ *managerProc, body string) bool {
		for _, s := range samples(body, "lagscale_consumer_lag_records") {
			out[s.labels["namespace"]+"/"+s.labels["name"]] = true
		}
		return false
	})
	return out, err
}

// scrapeLive reads each live manager's /metrics in turn and hands it to
// fn, until fn says it is done.
func (b *bench) scrapeLive(fn func(m *managerProc, body string) (done bool)) error {
	for _, m := range b.managers {
		if m.exited() {
			continue
		}
		body, err := scrape(m, b.token)
		if err != nil {
			return err
		}
		if fn(m, body) {
			return nil
		}
	}
	return nil
}

// elected is the replica that leader election elected, which runs the
// sharder: the one whose leader_election_master_status is 1.
func (b *bench) elected() (*managerProc, error) {
	var found *managerProc
	err := b.scrapeLive(func(m *managerProc, body string) bool {
		for _, s := range samples(body, "leader_election_master_status") {
			if s.value == 1 {
				found = m
			}
		}
		return found != nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("no replica says it is elected (leader_election_master_status)")
	}
	return found, nil
}

// pickVictim prints each live replica's share of the consumers and picks
// the replica to kill: one that does not run the sharder, or with sharder
// the one that does. It returns the victim's consumers, sorted.
func (b *bench) pickVictim(ctx context.Context, sharder bool) (*managerProc, []string, error) {
	owner, deployments, err := b.owners(ctx)
	if err != nil {
		return nil, nil, err
	}
	count := map[string]int{}
	for _, o := range owner {
		count[o]++
	}
	var shares []string
	for _, m := range b.managers {
		if m.exited() {
			continue
		}
		shares = append(shares, fmt.Sprintf("%s %d consumers (%.1f%%), %d Deployments", m.name, count[m.name],
			100*float64(count[m.name])/float64(len(owner)), deployments[m.name]))
	}
	fmt.Printf("shards: %s; unlabelled %d\n", strings.Join(shares, "; "), count[""])

	elected, err := b.elected()
	if err != nil {
		return nil, nil, err
	}
	var victim *managerProc
	for _, m := range b.managers {
		if !m.exited() && (m == elected) == sharder {
			victim = m
		}
	}
	if victim == nil {
		return nil, nil, fmt.Errorf("no live replica to kill with sharder=%v", sharder)
	}
	role := "a replica that does not run the sharder"
	if sharder {
		role = "the replica that runs the sharder"
	}
	fmt.Printf("killing %s, %s\n", victim.name, role)
	var moved []string
	for k, o := range owner {
		if o == victim.name {
			moved = append(moved, k)
		}
	}
	sort.Strings(moved)
	return victim, moved, nil
}
