package lag

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func TestPartitionLagFor(t *testing.T) {
	tests := []struct {
		name                     string
		logStart, end, committed int64
		hasCommit                bool
		policy                   string
		want                     int64
	}{
		{name: "committed mid log", logStart: 0, end: 100, committed: 40, hasCommit: true, policy: ResetLatest, want: 60},
		{name: "committed at end", logStart: 0, end: 100, committed: 100, hasCommit: true, want: 0},
		{name: "committed past end is never negative", logStart: 0, end: 100, committed: 120, hasCommit: true, want: 0},
		{name: "no commit latest counts nothing", logStart: 10, end: 100, committed: -1, policy: ResetLatest, want: 0},
		{name: "no commit default policy is latest", logStart: 10, end: 100, committed: -1, policy: "", want: 0},
		{name: "no commit earliest counts from log start", logStart: 30, end: 100, committed: -1, policy: ResetEarliest, want: 70},
		{name: "no commit earliest empty log", logStart: 100, end: 100, committed: -1, policy: ResetEarliest, want: 0},
		{name: "commit below log start counts end minus commit", logStart: 50, end: 100, committed: 10, hasCommit: true, want: 90},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PartitionLagFor(tt.logStart, tt.end, tt.committed, tt.hasCommit, tt.policy); got != tt.want {
				t.Fatalf("PartitionLagFor = %d, want %d", got, tt.want)
			}
		})
	}
}

func seriesOf(pts ...[2]float64) *series {
	s := newSeries(64)
	for _, p := range pts {
		s.add(at(p[0]), int64(p[1]))
	}
	return s
}

func TestSeriesAdd(t *testing.T) {
	tests := []struct {
		name      string
		pts       [][2]float64
		max       int
		wantLen   int
		wantFirst point
		wantDec   bool
	}{
		{name: "growing keeps every point", pts: [][2]float64{{0, 0}, {1, 10}, {2, 20}}, max: 64, wantLen: 3, wantFirst: point{at(0).UnixNano(), 0}},
		{name: "flat run keeps first and last", pts: [][2]float64{{0, 5}, {1, 5}, {2, 5}, {3, 5}}, max: 64, wantLen: 2, wantFirst: point{at(0).UnixNano(), 5}},
		{name: "bounded drops oldest", pts: [][2]float64{{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}, max: 4, wantLen: 4, wantFirst: point{at(2).UnixNano(), 2}},
		{name: "decrease resets", pts: [][2]float64{{0, 10}, {1, 20}, {2, 5}}, max: 64, wantLen: 1, wantFirst: point{at(2).UnixNano(), 5}, wantDec: true},
		{name: "out of order ignored", pts: [][2]float64{{1, 10}, {0, 20}}, max: 64, wantLen: 1, wantFirst: point{at(1).UnixNano(), 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeries(tt.max)
			dec := false
			for _, p := range tt.pts {
				dec = s.add(at(p[0]), int64(p[1])) || dec
			}
			if len(s.pts) != tt.wantLen || s.pts[0] != tt.wantFirst || dec != tt.wantDec {
				t.Fatalf("series = %v (decreased %v), want len %d first %v decreased %v", s.pts, dec, tt.wantLen, tt.wantFirst, tt.wantDec)
			}
		})
	}
}

func TestSeriesRate(t *testing.T) {
	tests := []struct {
		name   string
		s      *series
		window time.Duration
		want   float64
	}{
		{name: "empty", s: seriesOf(), window: 10 * time.Second, want: 0},
		{name: "one point", s: seriesOf([2]float64{0, 5}), window: 10 * time.Second, want: 0},
		{name: "steady 100/s", s: seriesOf([2]float64{0, 0}, [2]float64{1, 100}, [2]float64{2, 200}, [2]float64{3, 300}), window: 10 * time.Second, want: 100},
		{name: "window shorter than history", s: seriesOf([2]float64{0, 0}, [2]float64{10, 0}, [2]float64{20, 500}), window: 10 * time.Second, want: 50},
		{
			// Commits every second at 10/s, but the commit due at t=4 arrives
			// only at t=5: the windowed slope still says 10/s, not 0.
			name:   "late commit does not look like a stall",
			s:      seriesOf([2]float64{0, 0}, [2]float64{1, 10}, [2]float64{2, 20}, [2]float64{3, 30}, [2]float64{4, 30}, [2]float64{5, 50}),
			window: 5 * time.Second, want: 10,
		},
		{
			// A burst of 100 in the last second over a window of 10s reads
			// as 10/s plus the background, not 100/s.
			name:   "burst is spread over the window",
			s:      seriesOf([2]float64{0, 0}, [2]float64{9, 9}, [2]float64{10, 110}),
			window: 10 * time.Second, want: 11,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.rate(tt.window); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("rate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTimeLagSeconds(t *testing.T) {
	// Ends observed every 10s while producing 10 records/s from t=100.
	steady := seriesOf([2]float64{100, 1000}, [2]float64{110, 1100}, [2]float64{120, 1200}, [2]float64{130, 1300})
	tests := []struct {
		name     string
		ends     *series
		pos, end int64
		rate     float64
		now      float64
		want     float64
	}{
		{name: "caught up", ends: steady, pos: 1300, end: 1300, rate: 10, now: 130, want: 0},
		{name: "past end", ends: steady, pos: 1400, end: 1300, rate: 10, now: 130, want: 0},
		// Record 1149 exists once the end reached 1150, at t=115.
		{name: "interpolated between polls", ends: steady, pos: 1149, end: 1300, rate: 10, now: 130, want: 15},
		{name: "on a poll point", ends: steady, pos: 1099, end: 1300, rate: 10, now: 130, want: 20},
		// Record 899 is 100 records before the oldest point: extrapolated
		// 10s further back at 10/s.
		{name: "older than history extrapolates with the rate", ends: steady, pos: 899, end: 1300, rate: 10, now: 130, want: 40},
		{name: "older than history without rate is the oldest age", ends: steady, pos: 899, end: 1300, rate: 0, now: 130, want: 30},
		{
			// Production stopped at t=120; the age keeps growing with now.
			name: "age grows when production stops", ends: seriesOf([2]float64{100, 1000}, [2]float64{110, 1100}, [2]float64{120, 1200}, [2]float64{130, 1200}, [2]float64{140, 1200}),
			pos: 1149, end: 1200, rate: 0, now: 140, want: 25,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := timeLagSeconds(tt.ends, nil, tt.pos, tt.end, tt.rate, at(tt.now))
			if math.Abs(got-tt.want) > 0.01 {
				t.Fatalf("timeLagSeconds = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassifyHealth(t *testing.T) {
	moving := healthInput{Lag: 10, HasCommit: true, Covered: true, CommitMoved: true, ProductionRate: 5, ConsumptionRate: 5, Members: 2}
	with := func(f func(*healthInput)) healthInput { in := moving; f(&in); return in }
	tests := []struct {
		name string
		in   healthInput
		want Health
	}{
		{name: "keeping up", in: moving, want: HealthOK},
		{name: "no lag", in: with(func(in *healthInput) { in.Lag = 0; in.CommitMoved = false }), want: HealthOK},
		{name: "not enough history", in: with(func(in *healthInput) { in.Covered = false; in.CommitMoved = false }), want: HealthOK},
		{name: "lag growing", in: with(func(in *healthInput) { in.LagGrew = true; in.ConsumptionRate = 2 }), want: HealthWarn},
		{name: "lag grew but draining now", in: with(func(in *healthInput) { in.LagGrew = true; in.ConsumptionRate = 8 }), want: HealthOK},
		{name: "members but commit stuck", in: with(func(in *healthInput) { in.CommitMoved = false }), want: HealthStall},
		{name: "no members and commit stuck", in: with(func(in *healthInput) { in.CommitMoved = false; in.Members = 0 }), want: HealthStop},
		{name: "unknown members and commit stuck", in: with(func(in *healthInput) { in.CommitMoved = false; in.Members = -1 }), want: HealthStall},
		{name: "never committed with lag", in: with(func(in *healthInput) { in.HasCommit = false; in.CommitMoved = false }), want: HealthStop},
		{name: "rewind wins", in: with(func(in *healthInput) { in.Rewound = true; in.CommitMoved = false }), want: HealthRewind},
		{name: "rewind without lag", in: with(func(in *healthInput) { in.Rewound = true; in.Lag = 0 }), want: HealthRewind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyHealth(tt.in); got != tt.want {
				t.Fatalf("classifyHealth = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDrainSeconds(t *testing.T) {
	tests := []struct {
		name   string
		s      Snapshot
		want   float64
		wantOK bool
	}{
		{name: "draining", s: Snapshot{TotalLag: 1000, ProductionRate: 50, ConsumptionRate: 150}, want: 10, wantOK: true},
		{name: "falling behind", s: Snapshot{TotalLag: 1000, ProductionRate: 150, ConsumptionRate: 50}},
		{name: "balanced", s: Snapshot{TotalLag: 1000, ProductionRate: 50, ConsumptionRate: 50}},
		{name: "no lag", s: Snapshot{ConsumptionRate: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := DrainSeconds(tt.s)
			if ok != tt.wantOK || got != tt.want {
				t.Fatalf("DrainSeconds = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestClusterConfigID(t *testing.T) {
	base := ClusterConfig{BootstrapServers: []string{"b:9092", "a:9092"}, SASL: &SASLConfig{Mechanism: MechanismScramSHA512, Username: "u", Password: "hunter2"}}
	reordered := ClusterConfig{BootstrapServers: []string{"a:9092", "b:9092"}, SASL: &SASLConfig{Mechanism: MechanismScramSHA512, Username: "u", Password: "hunter2"}}
	newPass := ClusterConfig{BootstrapServers: []string{"a:9092", "b:9092"}, SASL: &SASLConfig{Mechanism: MechanismScramSHA512, Username: "u", Password: "hunter3"}}
	withTLS := ClusterConfig{BootstrapServers: []string{"a:9092", "b:9092"}, TLS: &TLSConfig{InsecureSkipVerify: true}, SASL: base.SASL}
	tests := []struct {
		name string
		a, b ClusterConfig
		same bool
	}{
		{name: "server order does not matter", a: base, b: reordered, same: true},
		{name: "password change is a new identity", a: base, b: newPass},
		{name: "TLS change is a new identity", a: base, b: withTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.ID() == tt.b.ID(); got != tt.same {
				t.Fatalf("IDs equal = %v, want %v", got, tt.same)
			}
		})
	}
	if base.Name() != "a:9092" {
		t.Fatalf("Name = %q, want a:9092", base.Name())
	}
}

func TestLagGrew(t *testing.T) {
	tests := []struct {
		name            string
		now, then, rate float64
		commitEvery     time.Duration
		want            bool
	}{
		{name: "wobble within one poll of production", now: 48, then: 10, rate: 8, want: false},
		{name: "growth beyond one poll of production", now: 60, then: 10, rate: 8, want: true},
		{name: "large backlog, small relative growth", now: 10500, then: 10000, rate: 50, want: false},
		{name: "large backlog growing by more than 10%", now: 11500, then: 10000, rate: 50, want: true},
		{name: "no production, one record more", now: 3, then: 2, rate: 0, want: false},
		{name: "no production, lag shrinking", now: 1, then: 5, rate: 0, want: false},
		{name: "saw-tooth of commits every 10 s", now: 10, then: 0, rate: 1, commitEvery: 10 * time.Second, want: false},
		{name: "growth beyond one commit interval of production", now: 25, then: 0, rate: 1, commitEvery: 10 * time.Second, want: true},
		{name: "commits more often than polls: the poll interval", now: 6, then: 0, rate: 1, commitEvery: time.Second, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lagGrew(tt.now, tt.then, tt.rate, 5*time.Second, tt.commitEvery); got != tt.want {
				t.Fatalf("lagGrew(%v, %v, %v/s, 5s, %s) = %v, want %v", tt.now, tt.then, tt.rate, tt.commitEvery, got, tt.want)
			}
		})
	}
}

func TestMoveInterval(t *testing.T) {
	at := func(sec int) time.Time { return time.Unix(1_700_000_000+int64(sec), 0) }
	// polls every 5 s; the value is what each poll read.
	build := func(vals ...int64) *series {
		s := newSeries(64)
		for i, v := range vals {
			s.add(at(5*i), v)
		}
		return s
	}
	tests := []struct {
		name string
		s    *series
		want time.Duration
	}{
		{"a move every poll", build(0, 5, 10, 15, 20), 5 * time.Second},
		{"a move every other poll", build(0, 0, 10, 10, 20, 20, 30), 10 * time.Second},
		{"a stall longer than the window is no cadence", build(0, 5, 10, 10, 10, 10, 10, 10, 10, 15, 20), 5 * time.Second},
		{"one move: the stretch before it", build(0, 0, 10, 10), 10 * time.Second},
		{"no move", build(7, 7, 7), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.moveInterval(25 * time.Second); got != tt.want {
				t.Fatalf("moveInterval = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestPeriodicCommitsAreHealthy: a group that keeps up but commits every
// 15 s, polled every 5 s, shows a saw-tooth of lag (0 after a commit, 10
// records two polls later). That is no trend: every partition stays OK at
// every poll, so the status does not flap between OK and WARN.
func TestPeriodicCommitsAreHealthy(t *testing.T) {
	const poll = 5 * time.Second
	tr := NewTracker(poll, ResetLatest)
	start := time.Unix(1_700_000_000, 0)
	var committed int64
	for i := range 60 {
		now := start.Add(time.Duration(i) * poll)
		end := int64(i * 5) // 1 record/s
		if i%3 == 0 {
			committed = end
		}
		snap := tr.Observe(now, []PartitionOffsets{{Topic: "t", Partition: 0, End: end, Committed: committed, HasCommit: true}}, 1, "Stable")
		if h := snap.Partitions[0].Health; h != HealthOK {
			t.Fatalf("poll %d (lag %d): health %s, want OK", i, snap.Partitions[0].Lag, h)
		}
	}
}

// TestSlowCommitsAreHealthyUntilTheyStop: a group that keeps up but commits
// every 30 s (Kafka Streams' default), longer than the 25 s health window,
// is healthy from its first commit seen on; once it stops committing, its
// partition is STALL after two missed commits. Before the first commit is
// seen its cadence is unknown, and the health window alone applies.
func TestSlowCommitsAreHealthyUntilTheyStop(t *testing.T) {
	const poll = 5 * time.Second
	tr := NewTracker(poll, ResetLatest)
	start := time.Unix(1_700_000_000, 0)
	var committed int64
	var lastCommit time.Time
	for i := range 240 {
		now := start.Add(time.Duration(i) * poll)
		end := int64(i * 5) // 1 record/s
		committing := i < 120
		if committing && i%6 == 0 {
			committed, lastCommit = end, now
		}
		snap := tr.Observe(now, []PartitionOffsets{{Topic: "t", Partition: 0, End: end, Committed: committed, HasCommit: true}}, 1, "Stable")
		h := snap.Partitions[0].Health
		switch {
		case committing && i > 6 && h != HealthOK:
			t.Fatalf("poll %d (lag %d, committing every 30 s): health %s, want OK", i, snap.Partitions[0].Lag, h)
		case !committing && now.Sub(lastCommit) > 2*30*time.Second+poll && h != HealthStall:
			t.Fatalf("%s after the last commit (lag %d): health %s, want STALL", now.Sub(lastCommit), snap.Partitions[0].Lag, h)
		}
	}
}
