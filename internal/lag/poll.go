package lag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// tp names one partition.
type tp struct {
	topic     string
	partition int32
}

// partState is what the cluster knows about one partition, shared by every
// group that reads it.
type partState struct {
	known    bool
	logStart int64
	end      int64
	ends     *series
	err      error // the last ListOffsets error, shown in PartitionLag.Error
	// stamps are the records' timestamps read at commits (timestamps.go).
	stamps []stamp
	// stampErr is why the last read of a timestamp was refused, at
	// stampErrAt (unix nanoseconds); nil once a read succeeds.
	stampErr   error
	stampErrAt int64
}

// groupState is the history of one consumer group on this cluster.
type groupState struct {
	parts   map[tp]*groupPart
	polls   int
	state   string
	members int
	err     error // the last describe or offsets error: the snapshot is stale
	// desc is the latest good description (type, epochs, rebalancing).
	desc groupDescription
	// mismatch says that the broker knows the group under another type.
	mismatch string
	// shareLag is the broker's lag per partition of a share group.
	shareLag map[tp]int64
}

// groupPart is the history of one group on one partition.
type groupPart struct {
	commits   *series
	firstSeen int64
	rewindAt  int64
	rewound   bool
	committed int64
	hasCommit bool
}

// listed is one partition's ListOffsets answer.
type listed struct {
	offset int64
	err    error
}

// pollData is everything one cycle read from Kafka.
type pollData struct {
	brokers   []string
	missing   map[string]bool
	topicErr  map[string]error
	parts     map[string][]int32
	leaders   map[tp]int32
	topicIDs  map[string][16]byte
	starts    map[tp]listed
	ends      map[tp]listed
	commits   map[string]groupCommits
	described map[string]groupDescription
	// streams is the topology read for each streams group (streams.go).
	streams map[string]*streamsTopology
}

type groupCommits struct {
	err     error
	offsets map[tp]int64
	// lags is a share group's lag as the broker reports it, where it does.
	lags map[tp]int64
}

// cycle reads Kafka once for every subscription of the cluster, updates the
// histories and stores the new snapshots. It returns the cluster-level
// error, if any.
func (c *cluster) cycle(ctx context.Context) error {
	c.cycleMu.Lock()
	defer c.cycleMu.Unlock()

	e := c.e
	e.mu.Lock()
	subs := make(map[ConsumerKey]Subscription, len(c.subs))
	for k, s := range c.subs {
		subs[k] = s
	}
	interval := c.intervalLocked()
	e.mu.Unlock()
	if len(subs) == 0 {
		return nil
	}

	var topics []string
	groupTopics := make(map[string][]string)
	types := make(map[string]string)
	for _, s := range subs {
		topics = append(topics, s.Topics...)
		if s.DeadLetterTopic != "" {
			topics = append(topics, s.DeadLetterTopic)
		}
		groupTopics[s.Group] = append(groupTopics[s.Group], s.Topics...)
		// Two subscriptions of one group with different types: the
		// first type in groupTypes order is read, the same every cycle.
		if t, ok := types[s.Group]; !ok || slices.Index(groupTypes, groupTypeOf(s.GroupType)) < slices.Index(groupTypes, t) {
			types[s.Group] = groupTypeOf(s.GroupType)
		}
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)

	started := time.Now()
	before := c.hook.snapshotByKey()
	now := e.opts.Now()

	var data *pollData
	err := c.cfgErr
	if err == nil {
		authBefore := c.hook.authFailures.Load()
		cctx, cancel := context.WithTimeout(ctx, e.opts.RequestTimeout)
		data, err = c.read(cctx, topics, types, interval)
		cancel()
		if err != nil && c.cfg.SASL != nil && c.hook.authFailures.Load() > authBefore {
			// Some brokers answer bad credentials by closing the
			// connection; say what actually went wrong.
			err = fmt.Errorf("SASL %s authentication failed, check the username and password: %w", c.cfg.SASL.Mechanism, err)
		}
	}
	if ctx.Err() != nil && err != nil {
		return err // shutting down: keep the last snapshots as they are
	}

	window := time.Duration(e.opts.HealthWindow) * interval
	snaps := make(map[ConsumerKey]Snapshot, len(subs))
	if err != nil {
		c.failures++
		msg := redact(err, c.cfg)
		e.mu.Lock()
		for k, s := range subs {
			prev, ok := e.snaps[k]
			if !ok || prev.Group != s.Group {
				prev = Snapshot{Group: s.Group}
			}
			prev.Stale, prev.Reachable, prev.Error = true, false, msg
			snaps[k] = prev
		}
		c.status.Reachable = false
		c.status.Error = msg
		e.mu.Unlock()
		if c.reach != reachDown {
			e.log.Info("Kafka cluster unreachable", "cluster", c.name, "clusterID", c.id, "reason", msg)
			c.reach = reachDown
		}
	} else {
		c.failures = 0
		for g, t := range data.streams {
			groupTopics[g] = append(groupTopics[g], t.topics()...)
		}
		c.update(now, data, groupTopics, types)
		for k, s := range subs {
			if !c.settled(s, data) {
				continue // a first reading waits for its markers (markers.go)
			}
			snaps[k] = c.snapshot(s, now, window, data)
		}
		e.mu.Lock()
		c.status.Reachable = true
		c.status.Error = ""
		c.status.Brokers = data.brokers
		c.status.LastPoll = now
		e.mu.Unlock()
		if c.reach == reachDown {
			e.log.Info("Kafka cluster reachable", "cluster", c.name, "clusterID", c.id)
		}
		c.reach = reachUp
	}

	byAPI, total := c.hook.diff(before)
	e.mu.Lock()
	c.lastByAPI = byAPI
	c.status.LastCycleRequests = total
	e.mu.Unlock()
	e.metrics.pollDuration.WithLabelValues(c.name).Observe(time.Since(started).Seconds())

	changed, unchanged := e.setSnapshots(c, snaps, subs)
	if e.opts.OnChange != nil {
		for _, k := range changed {
			e.opts.OnChange(k)
		}
	}
	if e.opts.OnUnchanged != nil {
		for _, k := range unchanged {
			e.opts.OnUnchanged(k)
		}
	}
	return err
}

// read issues the cycle's requests: one Metadata for the union of topics,
// then concurrently ListOffsets (start and end, sharded per leader),
// OffsetFetch for the classic and consumer groups and
// DescribeShareGroupOffsets for the share groups, and each group type's
// describe (sharded per coordinator; see describeGroups).
func (c *cluster) read(ctx context.Context, topics []string, types map[string]string, interval time.Duration) (*pollData, error) {
	var groups, shares []string
	for g, t := range types {
		if t == GroupShare {
			shares = append(shares, g)
		} else {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	slices.Sort(shares)
	d := &pollData{
		missing:  make(map[string]bool),
		topicErr: make(map[string]error),
		parts:    make(map[string][]int32),
		leaders:  make(map[tp]int32),
		topicIDs: make(map[string][16]byte),
	}

	// A streams group's topics are in its topology, so with streams groups
	// the describes come first and the offsets after them, in the same
	// cycle; without, they run beside the offsets.
	streams := slices.Contains(slices.Collect(maps.Values(types)), GroupStreams)
	if streams {
		d.described = c.describeGroups(ctx, types)
		d.streams = c.streamsTopologies(types, d.described)
		for _, t := range d.streams {
			topics = append(topics, t.topics()...)
		}
		slices.Sort(topics)
		topics = slices.Compact(topics)
	}

	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	// A nil topic list asks for every topic of the cluster; an empty one
	// for none. We only ever want the subscribed topics.
	req.Topics = make([]kmsg.MetadataRequestTopic, 0, len(topics))
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	// The cache limit below the interval makes every cycle refresh the
	// metadata once; the ListOffsets sharder then reuses it instead of
	// asking again.
	meta, err := c.client.RequestCachedMetadata(ctx, req, max(interval/2, time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("reading metadata: %w", err)
	}
	for _, b := range meta.Brokers {
		d.brokers = append(d.brokers, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	slices.Sort(d.brokers)
	for _, t := range meta.Topics {
		if t.Topic == nil {
			continue
		}
		name := *t.Topic
		err := kerr.ErrorForCode(t.ErrorCode)
		c.countResponseError("Metadata", err)
		switch {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			d.missing[name] = true
			continue
		case err != nil:
			d.topicErr[name] = err
			continue
		}
		ps := make([]int32, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ps = append(ps, p.Partition)
			d.leaders[tp{name, p.Partition}] = p.Leader
		}
		d.topicIDs[name] = t.TopicID
		slices.Sort(ps)
		d.parts[name] = ps
	}
	for _, t := range topics {
		_, ok := d.parts[t]
		if !ok && d.topicErr[t] == nil {
			d.missing[t] = true
		}
	}

	var wg sync.WaitGroup
	wg.Go(func() { d.starts = c.listOffsets(ctx, d.parts, -2) })
	wg.Go(func() { d.ends = c.listOffsets(ctx, d.parts, -1) })
	var shareCommits map[string]groupCommits
	wg.Go(func() { d.commits = c.fetchCommits(ctx, groups) })
	wg.Go(func() { shareCommits = c.fetchShareOffsets(ctx, shares) })
	if !streams {
		wg.Go(func() { d.described = c.describeGroups(ctx, types) })
	}
	wg.Wait()
	maps.Copy(d.commits, shareCommits)

	// When every request failed on the wire the cluster is unreachable,
	// not merely degraded.
	if err := allFailed(d); err != nil {
		return nil, err
	}
	c.settleMarkers(ctx, d)
	return d, nil
}

// countResponseError counts an error code a broker put inside its answer
// (for a topic, partition or group). Errors that are no Kafka error code,
// such as a request that failed on the wire, are counted by the request
// hook instead.
func (c *cluster) countResponseError(api string, err error) {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		c.e.metrics.respErrors.WithLabelValues(c.name, api, ke.Message).Inc()
	}
}

// allFailed returns an error when nothing of the cycle succeeded.
func allFailed(d *pollData) error {
	var first error
	for _, l := range d.ends {
		if l.err == nil {
			return nil
		}
		first = cmp.Or(first, l.err)
	}
	for _, g := range d.commits {
		if g.err == nil {
			return nil
		}
		first = cmp.Or(first, g.err)
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("reading offsets: %w", first)
}

// listOffsets lists the offset at timestamp ts (-2 start, -1 end) of every
// partition; franz-go shards the request to each partition leader.
//
// End offsets are asked for READ_COMMITTED, which answers the last stable
// offset: below an open transaction, and equal to the high watermark
// otherwise. A read-committed consumer cannot read past it, so records of a
// transaction still open are not lag yet, and a group that has consumed
// everything committed has none.
func (c *cluster) listOffsets(ctx context.Context, parts map[string][]int32, ts int64) map[tp]listed {
	out := make(map[tp]listed)
	if len(parts) == 0 {
		return out
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	if ts == -1 {
		req.IsolationLevel = 1 // READ_COMMITTED: the last stable offset
	}
	for t, ps := range parts {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = t
		for _, p := range ps {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = ts
			rp.CurrentLeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	for _, shard := range c.client.RequestSharded(ctx, req) {
		sreq, _ := shard.Req.(*kmsg.ListOffsetsRequest)
		if shard.Err != nil {
			if sreq == nil {
				sreq = req
			}
			for _, t := range sreq.Topics {
				for _, p := range t.Partitions {
					out[tp{t.Topic, p.Partition}] = listed{offset: -1, err: shard.Err}
				}
			}
			continue
		}
		resp := shard.Resp.(*kmsg.ListOffsetsResponse)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				err := kerr.ErrorForCode(p.ErrorCode)
				c.countResponseError("ListOffsets", err)
				out[tp{t.Topic, p.Partition}] = listed{offset: p.Offset, err: err}
			}
		}
	}
	// A partition the broker did not answer for is an error on it alone.
	for t, ps := range parts {
		for _, p := range ps {
			if _, ok := out[tp{t, p}]; !ok {
				out[tp{t, p}] = listed{offset: -1, err: errors.New("no ListOffsets answer for partition")}
			}
		}
	}
	return out
}

// fetchCommits reads the committed offsets of all groups with one
// OffsetFetch per coordinator (batched groups, OffsetFetch v8+).
func (c *cluster) fetchCommits(ctx context.Context, groups []string) map[string]groupCommits {
	out := make(map[string]groupCommits, len(groups))
	if len(groups) == 0 {
		return out
	}
	read := func(r kadm.FetchOffsetsResponse) groupCommits {
		offs := make(map[tp]int64)
		for t, ps := range r.Fetched {
			for p, o := range ps {
				c.countResponseError("OffsetFetch", o.Err)
				if o.Err == nil && o.At >= 0 {
					offs[tp{t, p}] = o.At
				}
			}
		}
		return groupCommits{offsets: offs}
	}
	// A group the coordinator does not know has committed nothing.
	return byGroup(c, "OffsetFetch", groups, c.adm.FetchManyOffsets(ctx, groups...), nil,
		func(r kadm.FetchOffsetsResponse) error { return r.Err }, fetchFailed, read, read)
}

// describe reads state and members of all groups with one DescribeGroups per
// coordinator.
func (c *cluster) describe(ctx context.Context, groups []string) map[string]groupDescription {
	out := make(map[string]groupDescription, len(groups))
	if len(groups) == 0 {
		return out
	}
	described, err := c.adm.DescribeGroups(ctx, groups...)
	gone := func(dg kadm.DescribedGroup) groupDescription {
		return groupDescription{state: dg.State, epoch: -1, assignmentEpoch: -1}
	}
	return byGroup(c, "DescribeGroups", groups, described, err,
		func(dg kadm.DescribedGroup) error { return dg.Err }, describeFailed, gone,
		func(dg kadm.DescribedGroup) groupDescription {
			if dg.State == "Dead" {
				return gone(dg)
			}
			return groupDescription{
				typ: GroupClassic, state: dg.State, members: len(dg.Members),
				epoch: -1, assignmentEpoch: -1, assigned: countPartitions(dg.AssignedPartitions()),
			}
		})
}

// update folds a cycle's data into the histories.
func (c *cluster) update(now time.Time, d *pollData, groupTopics map[string][]string, types map[string]string) {
	hist := c.e.opts.HistorySize
	nowNs := now.UnixNano()

	live := make(map[tp]bool)
	for t, ps := range d.parts {
		for _, p := range ps {
			key := tp{t, p}
			live[key] = true
			st, ok := c.parts[key]
			if !ok {
				st = &partState{ends: newSeries(hist)}
				c.parts[key] = st
			}
			start, end := d.starts[key], d.ends[key]
			if err := cmp.Or(end.err, start.err); err != nil {
				st.err = err
				continue
			}
			st.err = nil
			st.known = true
			st.logStart, st.end = start.offset, end.offset
			st.ends.add(now, end.offset)
		}
	}
	for key := range c.parts {
		if !live[key] {
			delete(c.parts, key)
		}
	}

	for g := range c.groups {
		if _, ok := groupTopics[g]; !ok {
			delete(c.groups, g)
		}
	}
	for g, ts := range groupTopics {
		gs, ok := c.groups[g]
		if !ok {
			gs = &groupState{parts: make(map[tp]*groupPart), members: -1}
			c.groups[g] = gs
		}
		desc := d.described[g]
		gs.err = nil
		if desc.err != nil {
			gs.err = fmt.Errorf("describing group: %w", desc.err)
			gs.members = -1
		} else {
			gs.state, gs.members, gs.desc = desc.state, desc.members, desc
			gs.mismatch = typeMismatch(g, types[g], desc)
		}
		commits := d.commits[g]
		if commits.err != nil {
			gs.err = fmt.Errorf("fetching committed offsets: %w", commits.err)
			continue // keep the previous commits; the snapshot is marked stale
		}
		gs.shareLag = commits.lags
		gs.polls++
		want := make(map[tp]bool)
		for _, t := range ts {
			for _, p := range d.parts[t] {
				key := tp{t, p}
				want[key] = true
				gp, ok := gs.parts[key]
				if !ok {
					gp = &groupPart{commits: newSeries(hist), firstSeen: nowNs, committed: -1}
					gs.parts[key] = gp
				}
				off, has := commits.offsets[key]
				switch {
				case has:
					if gp.commits.add(now, off) {
						gp.rewound, gp.rewindAt = true, nowNs
					}
					gp.committed, gp.hasCommit = off, true
				case gp.hasCommit:
					// The commit disappeared (deleted or expired): start over.
					gp.commits = newSeries(hist)
					gp.firstSeen = nowNs
					gp.committed, gp.hasCommit = -1, false
				}
			}
		}
		for key := range gs.parts {
			if !want[key] {
				delete(gs.parts, key)
			}
		}
	}
}

// snapshot builds one subscription's Snapshot from the histories.
func (c *cluster) snapshot(s Subscription, now time.Time, window time.Duration, d *pollData) Snapshot {
	gs := c.groups[s.Group]
	snap := Snapshot{
		Time:               now,
		Reachable:          true,
		Group:              s.Group,
		GroupState:         gs.state,
		Members:            max(gs.members, 0),
		Polls:              gs.polls,
		GroupType:          gs.desc.typ,
		GroupEpoch:         gs.desc.epoch,
		AssignmentEpoch:    gs.desc.assignmentEpoch,
		RebalancingMembers: gs.desc.rebalancing,
		AssignedPartitions: gs.desc.assigned,
		TypeMismatch:       gs.mismatch,
	}
	if gs.desc.typ == "" {
		snap.GroupEpoch, snap.AssignmentEpoch = -1, -1
	}
	snap.Rebalancing = gs.desc.rebalancing > 0 || ((gs.desc.typ == GroupConsumer || gs.desc.typ == GroupStreams) && gs.desc.assignmentEpoch < gs.desc.epoch)
	if gs.err != nil {
		snap.Stale = true
		snap.Error = redact(gs.err, c.cfg)
	}
	if groupTypeOf(s.GroupType) == GroupStreams && errors.Is(d.described[s.Group].err, ErrStreamsUnsupported) {
		// Named even when an offset error took the group's error.
		snap.StreamsUnsupported, snap.Stale = true, true
		if !strings.Contains(snap.Error, ErrStreamsUnsupported.Error()) {
			snap.Error = joinNonEmpty(ErrStreamsUnsupported.Error(), snap.Error)
		}
	}
	// Offsets of a classic group and of a KIP-848 group are both read with
	// OffsetFetch, so between those two a mismatch changes the members
	// only. A share group keeps no committed offsets and a consumer group
	// no share-partition start offsets: across Share the figures measure a
	// group nobody consumes, which must not scale anything down.
	shareSide := func(t string) bool { return t == GroupShare }
	if gs.mismatch != "" && shareSide(gs.desc.typ) != shareSide(groupTypeOf(s.GroupType)) {
		snap.Stale = true
		snap.Error = joinNonEmpty(snap.Error, gs.mismatch)
	}
	var topicErrs, unstamped []string
	var stampErr error
	for _, t := range topicsOf(s, d.streams[s.Group]) {
		if d.missing[t] {
			snap.MissingTopics = append(snap.MissingTopics, t)
			continue
		}
		if err := d.topicErr[t]; err != nil {
			topicErrs = append(topicErrs, t+": "+err.Error())
			// The topic exists but cannot be read: say so, so that the
			// autoscaler knows its figures are not the whole group.
			snap.TopicErrors = append(snap.TopicErrors, TopicError{Topic: t, Error: redact(err, c.cfg)})
			continue
		}
		for _, p := range d.parts[t] {
			key := tp{t, p}
			st := c.parts[key]
			gp := gs.parts[key]
			pl := PartitionLag{Topic: t, Partition: p, CommittedOffset: -1, Health: HealthOK}
			if gp != nil && gp.hasCommit {
				pl.CommittedOffset, pl.HasCommit = gp.committed, true
			}
			snap.PartitionCount++
			if st == nil || !st.known {
				pl.Error = "offsets unknown"
				if st != nil && st.err != nil {
					pl.Error = redact(st.err, c.cfg)
				}
				snap.Partitions = append(snap.Partitions, pl)
				continue
			}
			pl.Error = redact(st.err, c.cfg)
			from := pl.CommittedOffset
			if pl.HasCommit {
				from = c.committedFor(key, from, st.end)
			}
			partitionFigures(&pl, st, gp, from, s.OffsetResetPolicy, now, window, c.e.opts.HealthWindow, gs.members)
			if bl, ok := gs.shareLag[key]; ok && groupTypeOf(s.GroupType) == GroupShare {
				// The broker's share lag leaves out the records after the
				// start offset that are already acknowledged.
				pl.Lag = bl
			}
			if st.stampErr != nil && pl.Lag > 0 {
				unstamped = append(unstamped, fmt.Sprintf("%s/%d", t, p))
				stampErr = st.stampErr
			}
			snap.TotalLag += pl.Lag
			snap.TimeLagSeconds = max(snap.TimeLagSeconds, pl.TimeLagSeconds)
			snap.ProductionRate += pl.ProductionRate
			snap.ConsumptionRate += pl.ConsumptionRate
			snap.Partitions = append(snap.Partitions, pl)
		}
	}
	if len(unstamped) > 0 {
		snap.TimestampsUnreadable = unstampedMessage(unstamped, redact(stampErr, c.cfg))
	}
	if len(topicErrs) > 0 {
		snap.Error = joinNonEmpty(snap.Error, "topic metadata: "+strings.Join(topicErrs, ", "))
	}
	if groupTypeOf(s.GroupType) == GroupStreams {
		snap.Streams = streamsSnapshot(s, d.streams[s.Group], d.parts, snap.Partitions)
	}
	snap.DeadLetters = c.deadLetters(s.DeadLetterTopic, d, window)
	return snap
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
