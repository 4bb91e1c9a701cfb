package lag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The time lag of a partition is the age of the record a consumer resumes
// at. The end-offset history says when each offset was first seen, which is
// only as old as the engine's watch: a backlog written before the operator
// started (or before a leader took over) would read as no time lag at all,
// and TimeLag would wait a whole target before acting on it. So the engine
// reads the record's own timestamp where the history cannot answer: the
// first time a partition's lowest commit lies before the history, it
// fetches from that commit (the same READ_COMMITTED Fetch, one per leader,
// that settles transaction markers in markers.go, so the first reading is
// settled too). Other groups' commits on the partition interpolate between
// that timestamp and the history until later cycles read them too, one
// offset per partition per cycle, and a commit that stays put is read
// exactly when its markers are settled.

// stamp is what one read learned of a partition: a consumer resuming at any
// offset in [from, at] is handed the record at at first, which was produced
// at t (unix nanoseconds).
type stamp struct {
	from, at, t int64
}

// maxStamps bounds the stamps kept per partition. Commits only move
// forward, so those below the lowest commit are dropped first.
const maxStamps = 16

// stampRetry is how long a partition whose Fetch was refused waits before
// it is asked again: a missing READ permission does not come back by
// itself within a cycle, and asking every cycle would only count errors.
const stampRetry = 5 * time.Minute

// stampFor returns the stamp that covers off, if any.
func stampFor(stamps []stamp, off int64) (stamp, bool) {
	for _, s := range stamps {
		if s.from <= off && off <= s.at {
			return s, true
		}
	}
	return stamp{}, false
}

// addStamp records s, replacing any stamp it overlaps, kept sorted by from.
func addStamp(stamps []stamp, s stamp) []stamp {
	stamps = slices.DeleteFunc(stamps, func(o stamp) bool { return o.from <= s.at && s.from <= o.at })
	i, _ := slices.BinarySearchFunc(stamps, s.from, func(o stamp, f int64) int { return int(min(max(o.from-f, -1), 1)) })
	stamps = slices.Insert(stamps, i, s)
	if len(stamps) > maxStamps {
		stamps = stamps[len(stamps)-maxStamps:]
	}
	return stamps
}

// pruneStamps drops the stamps wholly below lowest, the lowest offset any
// group resumes at, except the last of them: it stays the anchor that
// offsets above it interpolate from.
func pruneStamps(stamps []stamp, lowest int64) []stamp {
	n := 0
	for n < len(stamps) && stamps[n].at < lowest {
		n++
	}
	if n > 1 {
		stamps = slices.Delete(stamps, 0, n-1)
	}
	return stamps
}

// needsStamp reports whether the age of the record at off can only be
// guessed: no stamp covers it and it lies before the end-offset history.
func needsStamp(st *partState, off int64) bool {
	if _, ok := stampFor(st.stamps, off); ok {
		return false
	}
	first, ok := st.ends.first()
	return !ok || off+1 <= first.v
}

// producedAtStamped is when the record at off was produced: from a stamp
// that covers it; else interpolated between the nearest stamp below and the
// nearest knowledge above (a stamp, or the end-offset history, which it
// answers itself when off lies inside it); else the history's estimate.
func producedAtStamped(ends *series, stamps []stamp, off int64, rate float64) (int64, bool) {
	if s, ok := stampFor(stamps, off); ok {
		return s.t, true
	}
	first, hasFirst := ends.first()
	if hasFirst && off+1 > first.v {
		return ends.producedAt(off, rate)
	}
	var lo *stamp
	for i := range stamps {
		if stamps[i].at < off {
			lo = &stamps[i]
		}
	}
	if lo == nil {
		return ends.producedAt(off, rate)
	}
	hiOff, hiT, ok := int64(0), int64(0), false
	for _, s := range stamps {
		if s.from > off {
			hiOff, hiT, ok = s.from, s.t, true
			break
		}
	}
	if !ok && hasFirst {
		// The record before the history's first end offset was produced
		// by the time that end was seen.
		hiOff, hiT, ok = first.v-1, first.t, true
	}
	if !ok || hiOff <= lo.at || hiT < lo.t {
		return lo.t, true
	}
	f := float64(off-lo.at) / float64(hiOff-lo.at)
	return lo.t + int64(f*float64(hiT-lo.t)), true
}

// decompressor unpacks the records of a compressed batch.
var decompressor = kgo.DefaultDecompressor()

// batchRecordTime is the timestamp, in unix nanoseconds, of the first record
// at or after off in batch b, whose first offset is base. With
// LogAppendTime every record has the batch's. Otherwise the records are
// walked to the one at off; should they not decode, the timestamp is
// interpolated between the batch's first and largest ones, which a
// producer writes within one linger.
func batchRecordTime(b *kmsg.RecordBatch, base, off int64) int64 {
	if b.Attributes&0x08 != 0 {
		return b.MaxTimestamp * int64(time.Millisecond)
	}
	if off <= base {
		return b.FirstTimestamp * int64(time.Millisecond)
	}
	if raw, err := decompressor.Decompress(b.Records, kgo.CompressionCodecType(b.Attributes&0x07)); err == nil {
		for range b.NumRecords {
			l, n := binary.Varint(raw)
			if n <= 0 || l < 0 || int64(len(raw)-n) < l {
				break
			}
			var r kmsg.Record
			if r.ReadFrom(raw[:n+int(l)]) != nil {
				break
			}
			raw = raw[n+int(l):]
			if base+int64(r.OffsetDelta) >= off {
				return (b.FirstTimestamp + r.TimestampDelta64) * int64(time.Millisecond)
			}
		}
	}
	ts := b.FirstTimestamp
	if b.LastOffsetDelta > 0 && b.MaxTimestamp > ts {
		ts += (b.MaxTimestamp - ts) * min(off-base, int64(b.LastOffsetDelta)) / int64(b.LastOffsetDelta)
	}
	return ts * int64(time.Millisecond)
}

// refusesReads reports whether a Fetch error says the operator may not read
// the partition, rather than that it asked the wrong broker or too early.
func refusesReads(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// wantStamps adds to want, for every partition, the lowest resume offset
// over the cycle's commits that needs a timestamp (needsStamp): the lowest
// commit on the first poll, then, cycle by cycle, the other groups' commits
// that still lie before the history, whether they stay or move. It drops from want every partition whose reads were refused within
// stampRetry: a marker read there would be refused alike. Joined with the
// marker reads, it costs at most one Fetch per leader per cycle.
func (c *cluster) wantStamps(d *pollData, want map[tp]int64) {
	positions := make(map[tp][]int64)
	for _, gc := range d.commits {
		if gc.err != nil {
			continue
		}
		for key, off := range gc.offsets {
			end := d.ends[key]
			if end.err != nil {
				continue
			}
			pos := c.committedFor(key, off, end.offset)
			if s := d.starts[key]; s.err == nil {
				pos = max(pos, s.offset)
			}
			if pos >= end.offset {
				continue
			}
			positions[key] = append(positions[key], pos)
		}
	}
	now := c.e.opts.Now().UnixNano()
	refused := func(st *partState) bool {
		return st != nil && st.stampErr != nil && now-st.stampErrAt < int64(stampRetry)
	}
	for key := range want {
		if refused(c.parts[key]) {
			delete(want, key)
		}
	}
	for key, ps := range positions {
		st := c.parts[key]
		if st == nil {
			st = &partState{ends: newSeries(c.e.opts.HistorySize)}
			c.parts[key] = st
		}
		slices.Sort(ps)
		st.stamps = pruneStamps(st.stamps, ps[0])
		if refused(st) {
			continue
		}
		for _, pos := range ps {
			if !needsStamp(st, pos) {
				continue
			}
			if w, ok := want[key]; !ok || pos < w {
				want[key] = pos
			}
			break
		}
	}
}

// unstampedMessage says which partitions' record timestamps were refused
// and what the time lag is instead; it names at most three partitions.
func unstampedMessage(parts []string, reason string) string {
	named := strings.Join(parts[:min(len(parts), 3)], ", ")
	if len(parts) > 3 {
		named += fmt.Sprintf(" and %d more", len(parts)-3)
	}
	return fmt.Sprintf("record timestamps of %s unreadable (%s): time lag is estimated from when lagscale first saw the offsets; grant READ on the topics for the records' own age", named, reason)
}
