package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/shard"
)

// owners maps each consumer ("ns/name") to the replica its shard label
// names ("" while it has none), and counts each replica's Deployments.
func (b *bench) owners(ctx context.Context) (map[string]string, map[string]int, error) {
	owner := map[string]string{}
	deployments := map[string]int{}
	for _, ns := range []string{"bench", "probes"} {
		list := &v1alpha1.EventConsumerList{}
		if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, nil, err
		}
		for _, ec := range list.Items {
			owner[ns+"/"+ec.Name] = ec.Labels[shard.LabelShard]
		}
		ds := &appsv1.DeploymentList{}
		if err := b.c.List(ctx, ds, client.InNamespace(ns)); err != nil {
			return nil, nil, err
		}
		for _, d := range ds.Items {
			deployments[d.Labels[shard.LabelShard]]++
		}
	}
	return owner, deployments, nil
}

// killOne prints each replica's share of the consumers (what its cache
// holds: its EventConsumers and Deployments are selected by that label),
// then kills the last replica as a crash would and measures how long its
// consumers take to be relabelled, and to be decided again by their new
// owners: until each has a lag series on a survivor's /metrics, which the
// owner sets when it decides on the consumer's snapshot.
func (b *bench) killOne(ctx context.Context) error {
	owner, deployments, err := b.owners(ctx)
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, o := range owner {
		count[o]++
	}
	var shares []string
	for _, m := range b.managers {
		shares = append(shares, fmt.Sprintf("%s %d consumers (%.1f%%), %d Deployments", m.name, count[m.name],
			100*float64(count[m.name])/float64(len(owner)), deployments[m.name]))
	}
	fmt.Printf("shards: %s; unlabelled %d\n", strings.Join(shares, "; "), count[""])

	victim := b.managers[len(b.managers)-1]
	var moved []string
	for k, o := range owner {
		if o == victim.name {
			moved = append(moved, k)
		}
	}
	sort.Strings(moved)
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
	relabelled := make(chan time.Time, 1)
	go func() {
		for wctx.Err() == nil {
			now, err := b.labels(wctx)
			if err == nil && allMoved(moved, now, victim.name) {
				relabelled <- time.Now()
				return
			}
			time.Sleep(time.Second)
		}
	}()
	var decided time.Time
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
		if left == 0 {
			decided = time.Now()
		}
	}
	if decided.IsZero() {
		return fmt.Errorf("the %d consumers of killed replica %s were not all decided again by the others within 5 minutes", len(moved), victim.name)
	}
	var relabel time.Time
	select {
	case relabel = <-relabelled:
	case <-wctx.Done():
		return fmt.Errorf("the %d consumers of killed replica %s were decided on but not all relabelled within 5 minutes", len(moved), victim.name)
	}
	fmt.Printf("killed %s: its %d consumers decided again by the others within %s of the kill; its Lease expired %s after the kill, the consumers were relabelled %s after that (each checked every second)\n",
		victim.name, len(moved), decided.Sub(killed).Round(100*time.Millisecond), expiry.Sub(killed).Round(100*time.Millisecond),
		relabel.Sub(expiry).Round(100*time.Millisecond))
	return nil
}

// labels maps each consumer ("ns/name") to its shard label, from a
// metadata-only list: lighter than owners' on the API server.
func (b *bench) labels(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	for _, ns := range []string{"bench", "probes"} {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("EventConsumerList"))
		if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, m := range list.Items {
			out[ns+"/"+m.Name] = m.Labels[shard.LabelShard]
		}
	}
	return out, nil
}

func allMoved(keys []string, owner map[string]string, gone string) bool {
	for _, k := range keys {
		if o := owner[k]; o == "" || o == gone {
			return false
		}
	}
	return true
}

// decidedOn is the set of consumers with a lag series on a live manager.
func (b *bench) decidedOn() (map[string]bool, error) {
	out := map[string]bool{}
	for _, m := range b.managers {
		if m.exited() {
			continue
		}
		body, err := scrape(m, b.token)
		if err != nil {
			return nil, err
		}
		for _, s := range samples(body, "lagscale_consumer_lag_records") {
			out[s.labels["namespace"]+"/"+s.labels["name"]] = true
		}
	}
	return out, nil
}
