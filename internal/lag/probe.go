package lag

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Probe asks a cluster for its brokers once, over a connection of its own
// that it closes before returning, and reports what it found as a
// ClusterStatus: for a replica that must say whether a cluster is
// reachable without polling it (a sharded operator's KafkaCluster
// reporter owns none of the cluster's consumers). Errors are free of
// credentials, as the engine's are.
func Probe(ctx context.Context, cfg ClusterConfig, timeout time.Duration) ClusterStatus {
	st := ClusterStatus{ID: cfg.ID(), Name: cfg.Name()}
	opts, err := clientOptions(cfg, timeout)
	if err != nil {
		st.Error = redact(err, cfg)
		return st
	}
	cl, err := kgo.NewClient(append(opts, kgo.ClientID("lagscale-probe"))...)
	if err != nil {
		st.Error = redact(err, cfg)
		return st
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // no topic: brokers only
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		st.Error = redact(err, cfg)
		return st
	}
	for _, b := range resp.Brokers {
		st.Brokers = append(st.Brokers, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	slices.Sort(st.Brokers)
	st.Reachable = true
	st.LastPoll = time.Now()
	return st
}
