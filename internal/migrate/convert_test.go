package migrate

import (
	"slices"
	"testing"
)

func TestFindTrigger(t *testing.T) {
	tests := []struct {
		name          string
		types         []string
		wantField     string
		wantEssential bool
	}{
		{name: "one kafka trigger", types: []string{"kafka"}, wantField: "spec.triggers[0]"},
		{name: "apache-kafka after cpu", types: []string{"cpu", "apache-kafka"}, wantField: "spec.triggers[1]"},
		{name: "no Kafka trigger", types: []string{"cpu"}, wantEssential: true},
		{name: "two Kafka triggers", types: []string{"kafka", "kafka"}, wantField: "spec.triggers[0]", wantEssential: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			so := &ScaledObject{}
			for _, ty := range tt.types {
				so.Spec.Triggers = append(so.Spec.Triggers, Trigger{Type: ty})
			}
			rep := &Report{}
			trig, f := findTrigger(so, rep)
			if f != tt.wantField || (trig == nil) != (tt.wantField == "") || rep.Failed() != tt.wantEssential {
				t.Errorf("findTrigger = %q, essential %t; want %q, %t: %+v", f, rep.Failed(), tt.wantField, tt.wantEssential, rep.Lines)
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a", []string{"a"}},
		{"a, b,,c ", []string{"a", "b", "c"}},
		{" , ", nil},
	}
	for _, tt := range tests {
		if got := splitList(tt.in); !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("splitList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
