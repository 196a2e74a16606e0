// Package metrics owns holdd's Prometheus endpoint. Counters and gauges are
// read from the engine, the intake and the transports when Prometheus
// scrapes, so nothing on the HTLC path pays for them; only the two
// histograms (hold duration, decision latency) are observed as events
// happen.
package metrics
