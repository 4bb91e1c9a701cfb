package produce

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Segment
		wantErr string
	}{
		{name: "empty is constant", in: "", want: []Segment{{Shape: ShapeConstant, Factor: 1}}},
		{name: "constant", in: "constant", want: []Segment{{Shape: ShapeConstant, Factor: 1}}},
		{name: "steady alias", in: "steady:60s", want: []Segment{{Shape: ShapeConstant, Duration: time.Minute, Factor: 1}}},
		{name: "sine with amplitude", in: "sine:2m@0.8", want: []Segment{{Shape: ShapeSine, Duration: 2 * time.Minute, Factor: 0.8}}},
		{name: "sequence", in: "steady:60s,burst:120s@5x,idle:30s", want: []Segment{
			{Shape: ShapeConstant, Duration: time.Minute, Factor: 1},
			{Shape: ShapeBurst, Duration: 2 * time.Minute, Factor: 5},
			{Shape: ShapeIdle, Duration: 30 * time.Second, Factor: 0},
		}},
		{name: "defaults per shape", in: "step:10s,spikes:10s,ramp", want: []Segment{
			{Shape: ShapeStep, Duration: 10 * time.Second, Factor: 3},
			{Shape: ShapeSpikes, Duration: 10 * time.Second, Factor: 10},
			{Shape: ShapeRamp, Factor: 1},
		}},
		{name: "unknown shape", in: "wobble", wantErr: "unknown shape"},
		{name: "bad duration", in: "burst:soon", wantErr: `duration "soon"`},
		{name: "bad factor", in: "burst:10s@-2x", wantErr: `factor "-2x"`},
		{name: "open segment not last", in: "steady,burst:10s", wantErr: "only the last segment may omit its duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProfile(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Segments) != len(tt.want) {
				t.Fatalf("segments = %+v, want %+v", p.Segments, tt.want)
			}
			for i := range tt.want {
				if p.Segments[i] != tt.want[i] {
					t.Errorf("segment %d = %+v, want %+v", i, p.Segments[i], tt.want[i])
				}
			}
		})
	}
}

func TestProfileRate(t *testing.T) {
	tests := []struct {
		profile string
		at      time.Duration
		want    float64
	}{
		{"constant", time.Hour, 100},
		{"steady:60s,burst:120s@5x,idle:30s", 30 * time.Second, 100},
		{"steady:60s,burst:120s@5x,idle:30s", 90 * time.Second, 500},
		{"steady:60s,burst:120s@5x,idle:30s", 190 * time.Second, 0},
		{"steady:60s,burst:120s@5x,idle:30s", 210*time.Second + 10*time.Second, 100}, // repeats
		{"step:20s", 5 * time.Second, 100},
		{"step:20s", 15 * time.Second, 300},
		{"ramp:10s@2", 5 * time.Second, 100},
		{"ramp@2", 90 * time.Second, 200}, // an open ramp holds its peak
		{"sine:40s@0.5", 10 * time.Second, 150},
		{"sine:40s@0.5", 30 * time.Second, 50},
		{"spikes", 10*time.Second + 500*time.Millisecond, 1000},
		{"spikes", 15 * time.Second, 100},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"@"+tt.at.String(), func(t *testing.T) {
			p, err := ParseProfile(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Rate(100, tt.at); math.Abs(got-tt.want) > 1e-6 {
				t.Errorf("Rate = %v, want %v", got, tt.want)
			}
		})
	}
}

// The pacer sends the integral of the rate, whatever the tick size, and
// sends the same counts on every run.
func TestPacerFollowsTheSchedule(t *testing.T) {
	tests := []struct {
		profile string
		rate    float64
		until   time.Duration
		tick    time.Duration
		want    int64
	}{
		{"constant", 100, 10 * time.Second, 10 * time.Millisecond, 1000},
		{"constant", 100, 10 * time.Second, 7 * time.Millisecond, 1000},
		{"constant", 0.5, 10 * time.Second, 5 * time.Millisecond, 5},
		{"steady:1s,burst:1s@5x,idle:1s", 100, 3 * time.Second, 5 * time.Millisecond, 600},
		{"ramp:10s", 100, 10 * time.Second, 10 * time.Millisecond, 500},
		{"sine:10s@0.5", 100, 10 * time.Second, 10 * time.Millisecond, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			p, err := ParseProfile(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			run := func() (int64, []int64) {
				pc := NewPacer(p, tt.rate)
				var total int64
				var per []int64
				for now := tt.tick; now <= tt.until; now += tt.tick {
					n := pc.Advance(now)
					total += n
					per = append(per, n)
				}
				return total, per
			}
			got, a := run()
			if d := got - tt.want; d < -1 || d > 1 {
				t.Errorf("sent %d by %s, want %d±1", got, tt.until, tt.want)
			}
			_, b := run()
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("tick %d: %d then %d records; pacing is not deterministic", i, a[i], b[i])
				}
			}
		})
	}
}
