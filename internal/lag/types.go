// Package lag reads consumer-group lag from Kafka through the admin API and
// turns it into one Snapshot per EventConsumer.
//
// The Engine keeps one franz-go client and one poll loop per Kafka cluster
// identity (bootstrap servers plus authentication), shared by every
// Subscription that points at that cluster. Each cycle issues a fixed number
// of batched requests — one Metadata for the union of subscribed topics, one
// ListOffsets per partition leader for start and one for end offsets, and
// per group coordinator one OffsetFetch, one DescribeShareGroupOffsets when
// share groups are subscribed, and one describe per group type in use
// (DescribeGroups, ConsumerGroupDescribe, ShareGroupDescribe; a group
// without members is asked under the other types too, groups.go) — so the
// cost of a cycle does not grow with the number of consumer groups. End offsets are
// last stable offsets (READ_COMMITTED). A commit that stays below the end
// for two cycles costs, once, one Fetch per leader to tell transaction
// markers and aborted records after it from records (markers.go).
//
// The arithmetic (lag, rates, time lag, partition health) lives in pure
// functions in calc.go so it can be table tested without a broker.
package lag

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"github.com/lagscale/lagscale/pkg/contract"
)

// ConsumerKey identifies one EventConsumer as namespace and name.
type ConsumerKey struct {
	// Namespace is the EventConsumer's namespace.
	Namespace string
	// Name is the EventConsumer's name.
	Name string
}

// String returns "namespace/name".
func (k ConsumerKey) String() string { return k.Namespace + "/" + k.Name }

// TLSConfig holds PEM material for a TLS connection to Kafka. It is the
// handler contract's type, so the lag engine and the SDK connect alike.
type TLSConfig = contract.TLS

// SASL mechanisms understood by SASLConfig.Mechanism.
const (
	MechanismPlain       = contract.MechanismPlain
	MechanismScramSHA256 = contract.MechanismScramSHA256
	MechanismScramSHA512 = contract.MechanismScramSHA512
)

// SASLConfig holds SASL credentials. They are used to authenticate and to
// derive ClusterConfig.ID, and never appear in logs or errors.
type SASLConfig = contract.SASL

// ClusterConfig describes how to reach one Kafka cluster.
type ClusterConfig struct {
	// BootstrapServers are the "host:port" seed brokers.
	BootstrapServers []string
	// TLS enables TLS when non-nil.
	TLS *TLSConfig
	// SASL enables SASL authentication when non-nil.
	SASL *SASLConfig
}

// ID returns a stable identity for the connection: a hash over the sorted
// bootstrap servers, the TLS material and the SASL mechanism and
// credentials. Two configs with the same ID share one client; a changed
// Secret yields a new ID, hence a new client. The credentials cannot be
// recovered from the ID.
func (c ClusterConfig) ID() string {
	h := sha256.New()
	field := func(b []byte) {
		h.Write([]byte(strconv.Itoa(len(b))))
		h.Write([]byte{':'})
		h.Write(b)
	}
	servers := slices.Clone(c.BootstrapServers)
	slices.Sort(servers)
	servers = slices.Compact(servers)
	field([]byte("servers"))
	for _, s := range servers {
		field([]byte(s))
	}
	if c.TLS != nil {
		field([]byte("tls"))
		field(c.TLS.CA)
		field(c.TLS.Cert)
		field(c.TLS.Key)
		field([]byte(strconv.FormatBool(c.TLS.InsecureSkipVerify)))
	}
	if c.SASL != nil {
		field([]byte("sasl"))
		field([]byte(c.SASL.Mechanism))
		field([]byte(c.SASL.Username))
		field([]byte(c.SASL.Password))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Name returns a human label for the cluster that is safe to log and to use
// as a metric label: the first bootstrap server in sorted order.
func (c ClusterConfig) Name() string {
	if len(c.BootstrapServers) == 0 {
		return "<none>"
	}
	servers := slices.Clone(c.BootstrapServers)
	slices.Sort(servers)
	return servers[0]
}

// Offset reset policies for Subscription.OffsetResetPolicy.
const (
	ResetLatest   = contract.ResetLatest
	ResetEarliest = contract.ResetEarliest
)

// DefaultPollInterval is used when a Subscription has no PollInterval. It
// is the API's default pollIntervalSeconds (this package does not import
// the API; an internal/scaler test checks that the two agree).
const DefaultPollInterval = 5 * time.Second

// Subscription asks the Engine to track one consumer group for one
// EventConsumer.
type Subscription struct {
	// Consumer is the EventConsumer this subscription belongs to.
	Consumer ConsumerKey
	// Cluster is how to reach Kafka.
	Cluster ClusterConfig
	// Group is the consumer group id.
	Group string
	// Topics are the topics the group consumes.
	Topics []string
	// GroupType is GroupClassic (also when empty), GroupConsumer,
	// GroupShare or GroupStreams: which describe API reads the group, and
	// whether its position is committed offsets or share-partition start
	// offsets. A streams group's topics are its topology's, read from the
	// broker; Topics may then be empty.
	GroupType string
	// OffsetResetPolicy is "latest" (default) or "earliest": how a partition
	// without a committed offset is counted.
	OffsetResetPolicy string
	// DeadLetterTopic, when set, is the topic whose growth
	// Snapshot.DeadLetters reports.
	DeadLetterTopic string
	// PollInterval is how often to read offsets; the cluster polls at the
	// shortest interval among its subscriptions. Zero means DefaultPollInterval.
	PollInterval time.Duration
}

// normalized returns a copy with sorted, de-duplicated topics and defaults
// filled in, so that equal subscriptions compare equal.
func (s Subscription) normalized() Subscription {
	s.Topics = slices.Clone(s.Topics)
	slices.Sort(s.Topics)
	s.Topics = slices.Compact(s.Topics)
	s.Cluster.BootstrapServers = slices.Clone(s.Cluster.BootstrapServers)
	slices.Sort(s.Cluster.BootstrapServers)
	s.Cluster.BootstrapServers = slices.Compact(s.Cluster.BootstrapServers)
	if s.OffsetResetPolicy != ResetEarliest {
		s.OffsetResetPolicy = ResetLatest
	}
	if s.PollInterval <= 0 {
		s.PollInterval = DefaultPollInterval
	}
	s.GroupType = groupTypeOf(s.GroupType)
	return s
}

// Health is the state of one partition judged over a window of polls.
type Health string

// Partition health values.
const (
	// HealthOK means the partition is keeping up or has no lag.
	HealthOK Health = "OK"
	// HealthWarn means lag grew over the window while commits still move.
	HealthWarn Health = "WARN"
	// HealthStall means lag > 0, the group has members, and the committed
	// offset did not move for the whole window.
	HealthStall Health = "STALL"
	// HealthStop means lag > 0 and nobody is consuming: the committed offset
	// did not move for the window and the group has no members, or the
	// partition has had no commit at all for longer than the window.
	HealthStop Health = "STOP"
	// HealthRewind means the committed offset went backwards within the window.
	HealthRewind Health = "REWIND"
)

// PartitionLag is the state of one partition for one group.
type PartitionLag struct {
	// Topic is the topic name.
	Topic string
	// Partition is the partition number.
	Partition int32
	// LogStartOffset is the first offset still retained.
	LogStartOffset int64
	// EndOffset is the last stable offset: the offset of the next record a
	// read-committed consumer can read. It is the high watermark unless a
	// transaction is open on the partition.
	EndOffset int64
	// CommittedOffset is the group's committed offset, -1 when none.
	CommittedOffset int64
	// HasCommit is false when the group has never committed here; Lag is
	// then counted by the offset reset policy.
	HasCommit bool
	// Lag is the number of records not yet consumed, never negative.
	Lag int64
	// TimeLagSeconds is how long ago the record at the committed offset was
	// produced; zero when there is no lag.
	TimeLagSeconds float64
	// ProductionRate is records/s appended to the partition, smoothed.
	ProductionRate float64
	// ConsumptionRate is records/s committed by the group, smoothed.
	ConsumptionRate float64
	// Health is the partition's health over the window.
	Health Health
	// Error is a leader or ListOffsets error for this partition only; the
	// offsets are then the last known ones.
	Error string
}

// Snapshot is everything known about one consumer group at one time.
type Snapshot struct {
	// Time is when the data was read (the last good poll).
	Time time.Time
	// Stale is true when the latest poll failed; the data is from Time.
	Stale bool
	// Error is the latest error, readable and free of credentials.
	Error string
	// Reachable is false when the cluster could not be reached.
	Reachable bool
	// Group is the consumer group id.
	Group string
	// GroupState is Stable, PreparingRebalance, CompletingRebalance, Empty,
	// Dead, or "" when unknown.
	GroupState string
	// Members is the number of group members, for every group type.
	Members int
	// GroupType is the type under which the broker knows the group
	// (GroupClassic, GroupConsumer, GroupShare), "" when it does not.
	GroupType string
	// GroupEpoch and AssignmentEpoch are a consumer or share group's
	// epochs, -1 for a classic group or none.
	GroupEpoch, AssignmentEpoch int32
	// AssignedPartitions is the number of partitions assigned over all
	// members, as the group's describe reports it.
	AssignedPartitions int
	// RebalancingMembers counts consumer-group members whose epoch trails
	// the group epoch.
	RebalancingMembers int
	// Rebalancing is true when a KIP-848 group is moving partitions:
	// members trail the group epoch, or the target assignment does.
	Rebalancing bool
	// TypeMismatch is a readable message when the broker knows the group
	// under another type than the subscription's; "" otherwise.
	TypeMismatch string
	// MissingTopics are subscribed topics that do not exist.
	MissingTopics []string
	// TopicErrors are subscribed topics that exist but could not be read
	// (a Metadata error such as TOPIC_AUTHORIZATION_FAILED). Their
	// partitions are not in Partitions or the totals, so the snapshot is
	// partial: it says nothing about their lag.
	TopicErrors []TopicError
	// TimestampsUnreadable says why the timestamps of the records at the
	// group's commits could not be read (the broker refused the Fetch, as
	// it does without a READ permission on the topic); empty when they were
	// read. TimeLagSeconds is then estimated from when the engine first saw
	// the offsets, and reads low for a backlog older than that.
	TimestampsUnreadable string
	// PartitionCount is the number of partitions over all existing topics.
	PartitionCount int
	// TotalLag is the sum of partition lags.
	TotalLag int64
	// TimeLagSeconds is the largest partition time lag.
	TimeLagSeconds float64
	// ProductionRate is records/s summed over partitions, smoothed.
	ProductionRate float64
	// ConsumptionRate is records/s summed over partitions, smoothed.
	ConsumptionRate float64
	// Partitions holds every partition sorted by topic and partition.
	Partitions []PartitionLag
	// Polls is the number of successful polls that contributed history to
	// this group; rates and health need a few before they mean anything.
	Polls int
	// Streams is a streams group's topology, tasks and split lag; nil for
	// the other group types and while no topology is known.
	Streams *StreamsInfo
	// StreamsUnsupported is true when the subscription is a streams group
	// and the broker does not implement the KIP-1071 protocol.
	StreamsUnsupported bool
	// DeadLetters is the growth of Subscription.DeadLetterTopic; nil when
	// the subscription names none.
	DeadLetters *DeadLetterInfo
}

// TopicError is a subscribed topic whose metadata came back with an error.
type TopicError struct {
	// Topic is the topic name.
	Topic string
	// Error is the broker's error, free of credentials.
	Error string
}

// DrainSeconds estimates how long the group needs to consume its lag at the
// current net drain rate (consumption minus production). It returns false
// when the lag is not draining (net rate <= 0) or when there is no lag.
func DrainSeconds(s Snapshot) (float64, bool) {
	net := s.ConsumptionRate - s.ProductionRate
	if s.TotalLag <= 0 || net <= 0 {
		return 0, false
	}
	return float64(s.TotalLag) / net, true
}

// ClusterStatus is the connection state of one cluster.
type ClusterStatus struct {
	// ID is ClusterConfig.ID.
	ID string
	// Name is ClusterConfig.Name.
	Name string
	// Reachable is true when the last cycle could talk to the cluster.
	Reachable bool
	// Brokers are the "host:port" addresses from the latest metadata.
	Brokers []string
	// Error is the latest cluster-level error, free of credentials.
	Error string
	// LastPoll is when the last successful cycle read its data.
	LastPoll time.Time
	// Consumers is the number of subscriptions using this cluster.
	Consumers int
	// LastCycleRequests is the number of Kafka requests the last cycle sent.
	LastCycleRequests int
}
