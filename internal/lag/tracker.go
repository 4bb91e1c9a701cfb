package lag

import "time"

// DefaultHistorySize is Options.HistorySize's default: the points kept per
// offset history.
const DefaultHistorySize = 64

// DefaultHealthWindow is Options.HealthWindow's default: the polls over
// which rates are smoothed and health is judged.
const DefaultHealthWindow = 5

// maxCommitCadence is the longest time between two commits that health
// reads as a group's cadence rather than as a stall it recovered from.
const maxCommitCadence = 5 * time.Minute

// stallCadences is how many of its usual commit intervals a group with
// members may go without committing before its partitions are STALL: one
// missed commit is a slow batch, two in a row a stall.
const stallCadences = 2

// partitionFigures fills pl's lag, rates, time lag and health from the
// partition's end-offset history st and the group's history on it gp (nil
// when the group has none yet). pl's committed offset must be set; from is
// where a consumer would resume: the commit, or past the transaction markers
// and aborted records that follow it (markers.go). The
// Engine and the Tracker both compute a partition's figures here, so the
// simulator measures with the operator's arithmetic.
func partitionFigures(pl *PartitionLag, st *partState, gp *groupPart, from int64, policy string, now time.Time, window time.Duration, healthWindow, members int) {
	winStart := now.UnixNano() - int64(window)
	pl.LogStartOffset, pl.EndOffset = st.logStart, st.end
	pl.Lag = PartitionLagFor(st.logStart, st.end, from, pl.HasCommit, policy)
	pl.ProductionRate = st.ends.rate(window)
	pos := position(st.logStart, st.end, from, pl.HasCommit, policy)
	if pl.Lag > 0 {
		pl.TimeLagSeconds = timeLagSeconds(st.ends, st.stamps, pos, st.end, pl.ProductionRate, now)
	}
	if gp == nil {
		return
	}
	in := healthInput{
		Lag:            pl.Lag,
		HasCommit:      pl.HasCommit,
		Covered:        gp.firstSeen <= winStart,
		Rewound:        gp.rewound && gp.rewindAt > winStart,
		ProductionRate: pl.ProductionRate,
		Members:        members,
	}
	if pl.HasCommit {
		pl.ConsumptionRate = gp.commits.rate(window)
		in.ConsumptionRate = pl.ConsumptionRate
		// A group commits at its own cadence (Kafka Streams every 30 s by
		// default, a batch handler after each batch): a commit not seen
		// within the health window is a stall only once the group has
		// also missed its usual commit twice. Until a commit has been
		// seen to move, the cadence is unknown and the window applies.
		cadence := gp.commits.moveInterval(maxCommitCadence)
		stallSince := now.UnixNano() - int64(max(window, stallCadences*cadence))
		in.CommitMoved = gp.commits.valueAt(stallSince) < float64(gp.committed)
		lagThen := st.ends.valueAt(winStart) - gp.commits.valueAt(winStart)
		interval := window / time.Duration(max(healthWindow, 1))
		in.LagGrew = lagGrew(float64(pl.Lag), lagThen, pl.ProductionRate, interval, cadence)
	}
	pl.Health = classifyHealth(in)
}

// PartitionOffsets is what one poll reads of one partition for one group.
type PartitionOffsets struct {
	// Topic and Partition name the partition.
	Topic     string
	Partition int32
	// LogStart is the first retained offset.
	LogStart int64
	// End is the end offset.
	End int64
	// Committed is the group's committed offset; ignored without HasCommit.
	Committed int64
	// HasCommit is whether the group has committed on the partition.
	HasCommit bool
	// CommittedTimestamp is when the record at Committed was produced, as
	// the record's timestamp says; zero when unknown. The Tracker reads it
	// where the Engine would fetch it: when the commit lies before the
	// end-offset history and no earlier reading covers it.
	CommittedTimestamp time.Time
}

// Tracker turns the offsets of one group, read at successive times, into
// Snapshots with the Engine's arithmetic and history bounds. It does no I/O:
// the simulator (internal/sim) feeds it simulated offsets, so that what it
// measures is what the operator would see.
type Tracker struct {
	window       time.Duration
	healthWindow int
	policy       string
	parts        map[tp]*partState
	group        map[tp]*groupPart
	polls        int
}

// NewTracker returns a Tracker for a group polled every interval, counting
// uncommitted partitions by the offset reset policy ("latest" or
// "earliest").
func NewTracker(interval time.Duration, policy string) *Tracker {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	if policy != ResetEarliest {
		policy = ResetLatest
	}
	return &Tracker{
		window:       DefaultHealthWindow * interval,
		healthWindow: DefaultHealthWindow,
		policy:       policy,
		parts:        map[tp]*partState{},
		group:        map[tp]*groupPart{},
	}
}

// Observe folds one poll into the histories and returns the group's
// Snapshot as the Engine would store it.
func (t *Tracker) Observe(now time.Time, offsets []PartitionOffsets, members int, groupState string) Snapshot {
	t.polls++
	nowNs := now.UnixNano()
	snap := Snapshot{Time: now, Reachable: true, GroupState: groupState, Members: members, Polls: t.polls}
	for _, o := range offsets {
		key := tp{o.Topic, o.Partition}
		st, ok := t.parts[key]
		if !ok {
			st = &partState{ends: newSeries(DefaultHistorySize)}
			t.parts[key] = st
		}
		if o.HasCommit && o.Committed < o.End && !o.CommittedTimestamp.IsZero() && needsStamp(st, o.Committed) {
			st.stamps = addStamp(st.stamps, stamp{from: o.Committed, at: o.Committed, t: o.CommittedTimestamp.UnixNano()})
		}
		if o.HasCommit {
			st.stamps = pruneStamps(st.stamps, o.Committed)
		}
		st.known, st.logStart, st.end = true, o.LogStart, o.End
		st.ends.add(now, o.End)
		gp, ok := t.group[key]
		if !ok {
			gp = &groupPart{commits: newSeries(DefaultHistorySize), firstSeen: nowNs, committed: -1}
			t.group[key] = gp
		}
		if o.HasCommit {
			if gp.commits.add(now, o.Committed) {
				gp.rewound, gp.rewindAt = true, nowNs
			}
			gp.committed, gp.hasCommit = o.Committed, true
		}
		pl := PartitionLag{Topic: o.Topic, Partition: o.Partition, CommittedOffset: -1, Health: HealthOK}
		if gp.hasCommit {
			pl.CommittedOffset, pl.HasCommit = gp.committed, true
		}
		partitionFigures(&pl, st, gp, pl.CommittedOffset, t.policy, now, t.window, t.healthWindow, members)
		snap.PartitionCount++
		snap.TotalLag += pl.Lag
		snap.TimeLagSeconds = max(snap.TimeLagSeconds, pl.TimeLagSeconds)
		snap.ProductionRate += pl.ProductionRate
		snap.ConsumptionRate += pl.ConsumptionRate
		snap.Partitions = append(snap.Partitions, pl)
	}
	return snap
}
