package autoscale

import (
	"testing"
	"time"
)

func TestTrend(t *testing.T) {
	ramp := func(from, to int, slope float64) []Observation {
		var h []Observation
		for s := from; s <= to; s += 10 {
			h = append(h, uniform(s, 4, 0, 0, 100+slope*float64(s-from), 0, 1))
		}
		return h
	}
	tests := []struct {
		name    string
		history []Observation
		want    float64
	}{
		{"a ramp over the whole window", ramp(0, 600, 0.5), 0.5},
		{"a falling inflow is a negative slope", ramp(0, 600, -0.1), -0.1},
		{"a history shorter than the window is no trend", ramp(400, 600, 0.5), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last := tt.history[len(tt.history)-1].Time
			got := trend(tt.history, last.Add(-trendWindow))
			if got < tt.want-1e-9 || got > tt.want+1e-9 {
				t.Errorf("trend %v, want %v", got, tt.want)
			}
		})
	}
}

func TestForecastAt(t *testing.T) {
	r := recurrence{period: 10 * time.Minute, peak: 500}
	f := inflowForecast{total: 100, slope: 1, recurring: &r, pulseFrom: 60, pulseTo: 120}
	for _, tc := range []struct{ t, want float64 }{{0, 100}, {30, 130}, {60, 500}, {119, 500}, {120, 220}} {
		if got := f.at(tc.t); got != tc.want {
			t.Errorf("at(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestPollInterval(t *testing.T) {
	h := []Observation{uniform(0, 1, 0, 0, 0, 0, 1), uniform(15, 1, 0, 0, 0, 0, 1), uniform(30, 1, 0, 0, 0, 0, 1), uniform(45, 1, 0, 0, 0, 0, 1)}
	if got := pollInterval(h); got != 15*time.Second {
		t.Errorf("poll %v, want 15s", got)
	}
	if got := pollInterval(h[:1]); got != 5*time.Second {
		t.Errorf("poll of one observation %v, want the API's 5s", got)
	}
}
