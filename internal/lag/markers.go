package lag

import (
	"context"
	"encoding/binary"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A transactional topic holds offsets no consumer is ever handed: the
// commit and abort markers, and the records of aborted transactions. A
// read-committed consumer that has handled every committed record commits
// the offset after its last record, which stops short of a trailing marker
// (franz-go does so on Apache Kafka and kfake alike; the Java client commits
// its position, past the marker). Measured against the end offset alone
// that group would keep a lag of one marker per partition, or of a whole
// aborted transaction, for ever, and never scale in.
//
// So when a group's commit stays below the end for two cycles in a row, the
// engine reads that partition once from the commit, READ_COMMITTED, and
// notes how far only markers and aborted records reach. Records never
// change, so the answer is kept for as long as some group's commit sits at
// that offset: a stalled or finished group costs one Fetch per leader,
// once; a group that commits as it goes costs nothing.

// skip says what lies at and after one committed offset of a partition.
type skip struct {
	// next is the first offset at or after the commit that may hold a
	// record a consumer is handed; the offsets before it hold none.
	next int64
	// data is true when next was seen to hold such a record; the range is
	// then final. Otherwise the read reached next and stopped there (the
	// last stable offset, or the size limit), and may be continued.
	data bool
}

type skipKey struct {
	tp
	from int64
}

// fetchPartitionBytes bounds what one partition's Fetch returns. Markers
// are ~80 bytes each; a larger aborted transaction is walked over several
// cycles.
const fetchPartitionBytes = 256 << 10

// committedFor returns the offset from which lag is counted for a group
// committed at committed on key: past the markers and aborted records known
// to follow it, never past end.
func (c *cluster) committedFor(key tp, committed, end int64) int64 {
	if s, ok := c.skips[skipKey{key, committed}]; ok && s.next > committed {
		return min(s.next, end)
	}
	return committed
}

// settleMarkers reads, for every commit that stayed below the last stable
// offset since the previous cycle and is not known yet, what lies between
// the commit and that end, with at most one Fetch per partition leader.
// It runs before update, so c.groups still holds the previous commits.
func (c *cluster) settleMarkers(ctx context.Context, d *pollData) {
	if c.skips == nil {
		c.skips = make(map[skipKey]skip)
	}
	want, keep := c.markerReads(d)
	c.wantStamps(d, want)
	if len(want) == 0 {
		return
	}
	// The commits kept and the skips known, by partition: a cycle may read
	// thousands of partitions, each looking only at its own.
	keepAt, skipAt := fromsByPartition(keep), fromsByPartition(c.skips)
	for leader, keys := range byLeader(want, d.leaders) {
		req := markerFetch(keys, want, d.topicIDs)
		resp, err := req.RequestWith(ctx, c.client.Broker(int(leader)))
		if err != nil {
			continue // lag stays counted from the commit; next cycle retries
		}
		c.settleFetched(resp, want, keepAt, skipAt, d.topicIDs)
	}
}

// fromsByPartition lists the committed offsets of m's keys by partition.
func fromsByPartition[V any](m map[skipKey]V) map[tp][]int64 {
	out := make(map[tp][]int64)
	for sk := range m {
		out[sk.tp] = append(out[sk.tp], sk.from)
	}
	return out
}

// markerReads returns the offset to read from on each partition (the
// lowest of its commits that did not move and are not settled yet), and
// the commits still below the end, whose skips are kept; the skips of the
// others are dropped.
func (c *cluster) markerReads(d *pollData) (want map[tp]int64, keep map[skipKey]bool) {
	want = make(map[tp]int64) // one offset per partition per cycle
	keep = make(map[skipKey]bool)
	for g, gc := range d.commits {
		if gc.err != nil {
			continue
		}
		prev := c.groups[g]
		for key, off := range gc.offsets {
			end := d.ends[key]
			if end.err != nil || off >= end.offset {
				continue
			}
			sk := skipKey{key, off}
			keep[sk] = true
			if prev == nil || prev.parts[key] == nil || !prev.parts[key].hasCommit || prev.parts[key].committed != off {
				continue // the commit moved: the group is consuming
			}
			from := off
			if s, ok := c.skips[sk]; ok {
				if s.data || s.next >= end.offset {
					continue
				}
				from = s.next
			}
			if w, ok := want[key]; !ok || from < w {
				want[key] = from
			}
		}
	}
	for sk := range c.skips {
		if !keep[sk] {
			delete(c.skips, sk)
		}
	}
	return want, keep
}

// byLeader groups the partitions to read by their leader, each list sorted
// by topic and partition; a partition without a known leader is left out.
func byLeader(want map[tp]int64, leaders map[tp]int32) map[int32][]tp {
	out := make(map[int32][]tp)
	for key := range want {
		if l, ok := leaders[key]; ok {
			out[l] = append(out[l], key)
		}
	}
	for _, keys := range out {
		slices.SortFunc(keys, func(a, b tp) int {
			if a.topic != b.topic {
				if a.topic < b.topic {
					return -1
				}
				return 1
			}
			return int(a.partition - b.partition)
		})
	}
	return out
}

// markerFetch is the READ_COMMITTED Fetch of one leader's partitions from
// the wanted offsets, keys sorted by topic, without a fetch session.
func markerFetch(keys []tp, want map[tp]int64, topicIDs map[string][16]byte) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = fetchPartitionBytes * int32(len(keys))
	req.IsolationLevel = 1 // READ_COMMITTED: aborted transactions are listed
	req.SessionEpoch = -1  // no fetch session
	for _, key := range keys {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != key.topic {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = key.topic
			rt.TopicID = topicIDs[key.topic]
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = key.partition
		rp.FetchOffset = want[key]
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rp.PartitionMaxBytes = fetchPartitionBytes
		req.Topics[len(req.Topics)-1].Partitions = append(req.Topics[len(req.Topics)-1].Partitions, rp)
	}
	return req
}

// settleFetched records what a marker Fetch found: a time stamp for the
// first delivered record, and for every commit waiting at an offset the
// read covered whether records lie beyond it (skips).
func (c *cluster) settleFetched(resp *kmsg.FetchResponse, want map[tp]int64, keepAt, skipAt map[tp][]int64, topicIDs map[string][16]byte) {
	names := make(map[[16]byte]string, len(topicIDs))
	for n, id := range topicIDs {
		names[id] = n
	}
	for _, rt := range resp.Topics {
		topic := rt.Topic
		if topic == "" {
			topic = names[rt.TopicID]
		}
		for _, rp := range rt.Partitions {
			key := tp{topic, rp.Partition}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				c.countResponseError("Fetch", err)
				if st := c.parts[key]; st != nil && refusesReads(err) {
					st.stampErr, st.stampErrAt = err, c.e.opts.Now().UnixNano()
				}
				continue
			}
			from, ok := want[key]
			if !ok {
				continue
			}
			next, data, at := firstDelivered(rp.RecordBatches, from, rp.AbortedTransactions)
			if st := c.parts[key]; st != nil && data && at != 0 {
				st.stamps = addStamp(st.stamps, stamp{from: from, at: next, t: at})
				st.stampErr = nil
			}
			// Every commit of a group waiting at an offset this read
			// covered shares the answer.
			for _, at := range keepAt[key] {
				if at <= next && at >= from {
					c.skips[skipKey{key, at}] = skip{next: next, data: data}
				}
			}
			for _, at := range skipAt[key] {
				sk := skipKey{key, at}
				if s, ok := c.skips[sk]; ok && !s.data && s.next == from && at < from {
					c.skips[sk] = skip{next: next, data: data}
				}
			}
		}
	}
}

// firstDelivered walks the record batches of a READ_COMMITTED fetch from
// offset from and returns the first offset that holds a record a consumer
// is handed (data true) and that record's timestamp in unix nanoseconds (0
// when the message format has none), or, when the batches hold none, the
// offset after the last batch read (data false). Control batches and the
// batches of aborted transactions are skipped; aborted lists the aborted
// transactions' producers and first offsets, as the broker sends them.
func firstDelivered(batches []byte, from int64, aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction) (next int64, data bool, at int64) {
	slices.SortFunc(aborted, func(a, b kmsg.FetchResponseTopicPartitionAbortedTransaction) int {
		return int(a.FirstOffset - b.FirstOffset)
	})
	aborting := make(map[int64]bool)
	next = from
	for len(batches) >= 17 {
		base := int64(binary.BigEndian.Uint64(batches[0:8]))
		length := int(int32(binary.BigEndian.Uint32(batches[8:12])))
		if length <= 0 || 12+length > len(batches) {
			break // a partial batch at the size limit
		}
		raw := batches[:12+length]
		batches = batches[12+length:]
		if raw[16] != 2 {
			return max(base, from), true, 0 // old message formats have no transactions
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			break
		}
		last := base + int64(b.LastOffsetDelta)
		if last < from {
			continue
		}
		for len(aborted) > 0 && aborted[0].FirstOffset <= last {
			aborting[aborted[0].ProducerID] = true
			aborted = aborted[1:]
		}
		control := b.Attributes&0x20 != 0
		transactional := b.Attributes&0x10 != 0
		switch {
		case control:
			// A marker ends its producer's transaction, aborted or not.
			delete(aborting, b.ProducerID)
		case transactional && aborting[b.ProducerID]:
		default:
			return max(base, from), true, batchRecordTime(&b, base, max(base, from))
		}
		next = last + 1
	}
	return next, false, 0
}

// settled reports whether s's snapshot may be stored. A group's first
// reading waits until every commit below the end has been read past its
// markers and aborted records (or the read was refused): shown unsettled,
// a finished transactional group would read as lag for a cycle and could
// scale up for nothing. The read of the lowest commit of each partition
// happens in the first cycle (timestamps.go), another group's commit in
// the next, so the first snapshot waits one cycle at most: from its second
// poll on, a group's snapshot is always stored.
func (c *cluster) settled(s Subscription, d *pollData) bool {
	gs := c.groups[s.Group]
	if gs == nil || gs.polls >= 2 || gs.err != nil {
		return true
	}
	for _, t := range s.Topics {
		for _, p := range d.parts[t] {
			key := tp{t, p}
			st, gp := c.parts[key], gs.parts[key]
			if st == nil || !st.known || gp == nil || !gp.hasCommit || st.stampErr != nil {
				continue
			}
			pos := max(gp.committed, st.logStart)
			if pos >= st.end {
				continue
			}
			if _, ok := c.skips[skipKey{key, gp.committed}]; ok {
				continue
			}
			if _, ok := stampFor(st.stamps, pos); ok {
				continue
			}
			return false
		}
	}
	return true
}
