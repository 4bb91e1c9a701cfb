package lag

import (
	"slices"
	"testing"
)

// TestMarkerFetchGroupsByLeader: one Fetch per leader, its partitions
// sorted by topic then partition and each topic listed once, reading from
// the wanted offset; a partition without a known leader is not read.
func TestMarkerFetchGroupsByLeader(t *testing.T) {
	want := map[tp]int64{{"b", 1}: 10, {"a", 2}: 20, {"a", 0}: 5, {"c", 0}: 7}
	leaders := map[tp]int32{{"b", 1}: 1, {"a", 2}: 1, {"a", 0}: 2}
	groups := byLeader(want, leaders)
	if len(groups) != 2 || !slices.Equal(groups[1], []tp{{"a", 2}, {"b", 1}}) || !slices.Equal(groups[2], []tp{{"a", 0}}) {
		t.Fatalf("byLeader = %v", groups)
	}
	req := markerFetch([]tp{{"a", 0}, {"a", 2}, {"b", 1}}, want, map[string][16]byte{"a": {1}})
	if req.IsolationLevel != 1 || req.SessionEpoch != -1 || req.MaxBytes != 3*fetchPartitionBytes {
		t.Errorf("request %+v: want READ_COMMITTED, no session, %d bytes", req, 3*fetchPartitionBytes)
	}
	if len(req.Topics) != 2 || req.Topics[0].Topic != "a" || req.Topics[0].TopicID != [16]byte{1} || len(req.Topics[0].Partitions) != 2 || req.Topics[1].Topic != "b" {
		t.Fatalf("topics %+v", req.Topics)
	}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			if got := rp.FetchOffset; got != want[tp{rt.Topic, rp.Partition}] {
				t.Errorf("%s/%d fetched from %d, want %d", rt.Topic, rp.Partition, got, want[tp{rt.Topic, rp.Partition}])
			}
		}
	}
}
