package controllers

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Event types, as corev1 names them.
const (
	EventNormalType  = "Normal"
	EventWarningType = "Warning"
)

// EventRecorder is the part of client-go's events.k8s.io recorder lagscale
// uses; controller-runtime's manager.GetEventRecorder satisfies it.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// event logs and records an event, only when transition is true: events
// are for changes (scaled, stalled, recovered), not for every reconcile.
func (r *EventConsumerReconciler) event(obj client.Object, eventType, reason, message string, transition bool) {
	if !transition {
		return
	}
	ctrl.Log.WithName("events").Info("Event", "object", klog.KObj(obj), "type", eventType, "reason", reason, "message", message)
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, eventType, reason, reason, "%s", message)
	}
}
