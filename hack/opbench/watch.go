package main

import (
	"context"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// scaleUps records, from a watch, when each Deployment of a namespace was
// first written with more replicas than it had when the watch began.
type scaleUps struct {
	mu    sync.Mutex
	start map[string]int32
	at    map[string]time.Time
	seen  chan struct{} // closed and replaced at each record
}

// watchScaleUps lists the namespace's Deployments and watches them until
// ctx ends, re-watching from the last version seen when a watch closes.
func watchScaleUps(ctx context.Context, cs *kubernetes.Clientset, ns string) (*scaleUps, error) {
	list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	s := &scaleUps{start: map[string]int32{}, at: map[string]time.Time{}, seen: make(chan struct{})}
	for _, d := range list.Items {
		s.start[d.Name] = replicasOf(&d)
	}
	rv := list.ResourceVersion
	go func() {
		for ctx.Err() == nil {
			w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
			if err != nil {
				time.Sleep(time.Second)
				continue
			}
			for ev := range w.ResultChan() {
				d, ok := ev.Object.(*appsv1.Deployment)
				if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				rv = d.ResourceVersion
				s.record(d, time.Now())
			}
			w.Stop()
		}
	}()
	return s, nil
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func (s *scaleUps) record(d *appsv1.Deployment, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, known := s.start[d.Name]
	if !known {
		s.start[d.Name] = replicasOf(d)
		return
	}
	if _, done := s.at[d.Name]; done || replicasOf(d) <= from {
		return
	}
	s.at[d.Name] = now
	close(s.seen)
	s.seen = make(chan struct{})
}

// first waits until deadline for name's first scale-up and returns when
// the watch saw it.
func (s *scaleUps) first(name string, deadline time.Time) (time.Time, bool) {
	for {
		s.mu.Lock()
		at, ok := s.at[name]
		seen := s.seen
		s.mu.Unlock()
		if ok {
			return at, true
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return time.Time{}, false
		}
		select {
		case <-seen:
		case <-time.After(wait):
		}
	}
}
