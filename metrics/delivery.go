package metrics

import "github.com/prometheus/client_golang/prometheus"

// deliveryCollector exports the path-delivery counters: senders' requests
// (48007) and the redeliveries they, reconnects and restarts cause.
type deliveryCollector struct {
	src                    Sources
	requests, redeliveries *prometheus.Desc
}

func newDeliveryCollector(src Sources) *deliveryCollector {
	return &deliveryCollector{
		src: src,
		requests: desc("path_requests_total", "release_paths_request "+
			"messages from senders, by outcome (hello, matched, "+
			"unknown, malformed, rate_limited, no_channel, failed).",
			"outcome"),
		redeliveries: desc("path_redeliveries_total", "Release paths "+
			"sent again, or not, by outcome (sent, send_failed, "+
			"too_soon, expired, queue_full, no_peer, failed).",
			"outcome"),
	}
}

// Describe implements prometheus.Collector.
func (c *deliveryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.redeliveries
}

// Collect implements prometheus.Collector.
func (c *deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range []struct {
		d   *prometheus.Desc
		get func() map[string]uint64
	}{{c.requests, c.src.PathRequests}, {c.redeliveries,
		c.src.Redeliveries}} {

		if s.get == nil {
			continue
		}
		for outcome, n := range s.get() {
			ch <- prometheus.MustNewConstMetric(s.d,
				prometheus.CounterValue, float64(n), outcome)
		}
	}
}
