package autoscale

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// names lists partition names for a reason, at most 8 of them.
func names(ns []string) string {
	const most = 8
	if len(ns) == 1 {
		return "partition " + ns[0]
	}
	if len(ns) <= most {
		return "partitions " + strings.Join(ns, ", ")
	}
	return fmt.Sprintf("partitions %s and %d more", strings.Join(ns[:most], ", "), len(ns)-most)
}

// replicas formats a replica count with its noun.
func replicas(n int32) string {
	if n == 1 {
		return "1 replica"
	}
	return fmt.Sprintf("%d replicas", n)
}

// relation is how a reason writes a measured value against its target.
func relation(a, b float64) string {
	if a > b {
		return ">"
	}
	return "<="
}

// secs formats seconds for a reason: whole seconds above 10 s, one decimal
// below.
func secs(s float64) string {
	if s >= 10 {
		return strconv.FormatFloat(math.Round(s), 'f', 0, 64) + "s"
	}
	return strconv.FormatFloat(s, 'f', 1, 64) + "s"
}

// num formats a rate without noise digits.
func num(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
