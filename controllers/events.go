package controllers

import (
	"context"

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

// event logs and records an event. Events are for changes (scaled, stalled,
// recovered), not for every reconcile: callers decide that a transition
// happened. The log line goes through the request's logger, so it carries
// the reconcile ID and the object like every other line of that reconcile.
func (r *EventConsumerReconciler) event(ctx context.Context, obj client.Object, eventType, reason, message string) {
	ctrl.LoggerFrom(ctx).Info("Event", "object", klog.KObj(obj), "type", eventType, "reason", reason, "message", message)
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, eventType, reason, reason, "%s", message)
	}
}
