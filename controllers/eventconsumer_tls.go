package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// insecureTLSMessage is the InsecureTLS condition's message and the
// Warning event's note.
const insecureTLSMessage = "tls.insecureSkipVerify is set: the brokers' certificates are not verified, so anyone on the path can read and change the traffic; set tls.caSecretRef instead"

// insecureTLS keeps the InsecureTLS condition in step with the resolved
// connection and records a Warning event when the setting appears. While
// the connection is not resolved (a wait) the condition stays as it was.
func (r *EventConsumerReconciler) insecureTLS(ctx context.Context, st *reconcileState) {
	if st.conn == nil {
		return
	}
	conds := &st.ec.Status.Conditions
	on := st.conn.TLS != nil && st.conn.TLS.InsecureSkipVerify
	was := meta.IsStatusConditionTrue(*conds, v1alpha1.ConditionInsecureTLS)
	if !on {
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionInsecureTLS)
		return
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: v1alpha1.ConditionInsecureTLS, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonInsecureSkipVerify,
		Message: insecureTLSMessage, ObservedGeneration: st.ec.Generation,
	})
	if !was {
		r.event(ctx, st.ec, EventWarningType, v1alpha1.EventInsecureTLS, insecureTLSMessage)
	}
}
