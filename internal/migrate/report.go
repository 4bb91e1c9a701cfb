package migrate

import (
	"fmt"
)

// Outcome says what became of one KEDA field.
type Outcome string

const (
	// Mapped means lagscale does the same thing.
	Mapped Outcome = "mapped"
	// Approximated means lagscale does something close; the line says how it
	// differs.
	Approximated Outcome = "approximated"
	// Unsupported means lagscale has nothing for it; the field is dropped.
	Unsupported Outcome = "unsupported"
)

// Line is one field's outcome.
type Line struct {
	// Field is the KEDA field, as a path in the ScaledObject (or in the
	// TriggerAuthentication for auth parameters).
	Field   string
	Outcome Outcome
	// Detail says where it went, or why not.
	Detail string
	// Essential is set on an unsupported field without which the consumer
	// would behave differently enough that migrate writes no EventConsumer
	// for it.
	Essential bool
}

// Report is the outcome of one ScaledObject.
type Report struct {
	// ScaledObject is namespace/name of the source.
	ScaledObject string
	Lines        []Line
}

// Failed reports whether an essential field could not be mapped.
func (r *Report) Failed() bool {
	for _, l := range r.Lines {
		if l.Essential {
			return true
		}
	}
	return false
}

func (r *Report) add(field string, o Outcome, format string, args ...any) {
	r.Lines = append(r.Lines, Line{Field: field, Outcome: o, Detail: fmt.Sprintf(format, args...)})
}

func (r *Report) essential(field, format string, args ...any) {
	r.Lines = append(r.Lines, Line{Field: field, Outcome: Unsupported, Detail: fmt.Sprintf(format, args...), Essential: true})
}
