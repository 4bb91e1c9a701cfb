package lag

import "time"

// DeadLetterInfo is the growth of a consumer's dead-letter topic, read with
// the same Metadata and ListOffsets as the group's topics. Records a handler
// or, for a KIP-1191 share group, the broker gives up on land there; more
// replicas do not help them, so their growth is a health signal beside the
// lag, not a reason to scale.
type DeadLetterInfo struct {
	// Topic is the dead-letter topic.
	Topic string
	// Missing is true when the topic does not exist.
	Missing bool
	// Records is the number of records retained in the topic: end minus
	// log start offset, over its partitions.
	Records int64
	// Rate is records per second appended over the health window.
	Rate float64
}

// deadLetters reads a dead-letter topic's size and growth from the
// partitions the cycle read; nil when the subscription names none.
func (c *cluster) deadLetters(topic string, d *pollData, window time.Duration) *DeadLetterInfo {
	if topic == "" {
		return nil
	}
	info := &DeadLetterInfo{Topic: topic, Missing: d.missing[topic]}
	for _, p := range d.parts[topic] {
		st := c.parts[tp{topic, p}]
		if st == nil || !st.known {
			continue
		}
		info.Records += max(st.end-st.logStart, 0)
		info.Rate += st.ends.rate(window)
	}
	return info
}
