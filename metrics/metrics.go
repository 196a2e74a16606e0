package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/holdd/holdd/mailbox"
	"github.com/holdd/holdd/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "holdd"

// Sources are what the collector reads at scrape time. Any may be nil.
type Sources struct {
	// Engine reports held counts and decision and release counters.
	Engine interface{ Stats() plugin.Stats }

	// Intake reports release messages dropped before the engine.
	Intake func() map[string]uint64

	// InterceptorConnected and InterceptorReconnects describe the
	// HtlcInterceptor stream.
	InterceptorConnected  func() bool
	InterceptorReconnects func() uint64

	// Transport names the release transport; TransportConnected
	// reports whether it is up.
	Transport          string
	TransportConnected func() bool

	// Recipient reports held_htlc_available messages by outcome
	// (recipient role); nil when the role is off.
	Recipient func() map[string]uint64

	// InvoiceServer reports the static invoice server's messages by
	// outcome (server role); nil when the role is off.
	InvoiceServer func() map[string]uint64

	// Mailbox reports the mailbox role's state; nil (or a nil result)
	// when the role is off.
	Mailbox func() *mailbox.Stats

	// PathRequests and Redeliveries report release_paths_request
	// messages and path redeliveries by outcome (lsp role); nil when
	// the role is off.
	PathRequests func() map[string]uint64
	Redeliveries func() map[string]uint64
}

// Observations are the histograms fed as holds end and decisions are made.
// They exist apart from Metrics so that the engine and the interceptor,
// which feed them, can be built before the sources Metrics reads: the
// sources are those very subsystems.
type Observations struct {
	holdDuration    *prometheus.HistogramVec
	decisionLatency prometheus.Histogram
}

// NewObservations creates the histograms.
func NewObservations() *Observations {
	return &Observations{
		holdDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "hold_duration_seconds",
			Help:      "How long HTLCs were held, by how the hold ended.",
			// Holds last from seconds (recipient online) to days.
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"outcome"}),
		decisionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "decision_latency_seconds",
			Help:      "Time to decide on an intercepted HTLC.",
			Buckets: prometheus.ExponentialBuckets(
				10e-6, 4, 10),
		}),
	}
}

// Metrics is holdd's registry.
type Metrics struct {
	*Observations

	src Sources
	reg *prometheus.Registry

	heldCount, heldMsat, decisions, releases, failbacks,
	icptUp, icptReconnects, transportUp, heldAvailable,
	invoiceServer *prometheus.Desc

	mbStoredMsgs, mbStoredBytes, mbRecipients, mbOnline, mbStored,
	mbForwarded, mbDelivered, mbDropped, mbRegistrations *prometheus.Desc
}

// New creates the registry over src, with histograms of its own.
func New(src Sources) *Metrics {
	return NewWithObservations(src, NewObservations())
}

// NewWithObservations creates the registry over src and obs, histograms
// that were fed before the registry existed.
func NewWithObservations(src Sources, obs *Observations) *Metrics {
	m := &Metrics{
		Observations: obs,
		src:          src,
		reg:          prometheus.NewRegistry(),
		heldCount: desc("held_htlcs", "HTLCs held now (held or "+
			"released, not yet resolved)."),
		heldMsat: desc("held_msat", "Incoming msat of the HTLCs held "+
			"now."),
		decisions: desc("decisions_total", "Decisions on intercepted "+
			"HTLCs.", "decision"),
		releases: desc("releases_total", "Release messages and manual "+
			"releases by outcome.", "outcome"),
		failbacks: desc("failbacks_total", "Held or flagged HTLCs "+
			"failed back, by reason.", "reason"),
		icptUp: desc("interceptor_connected", "1 while the "+
			"HtlcInterceptor stream is up."),
		icptReconnects: desc("interceptor_reconnects_total",
			"HtlcInterceptor stream re-opened after a drop."),
		transportUp: desc("transport_connected", "1 while the release "+
			"transport (peer link or custom-message stream) is up.",
			"transport"),
		heldAvailable: desc("held_htlc_available_total",
			"held_htlc_available messages reaching the recipient "+
				"role, by outcome (replied, rate_limited, forged, "+
				"...).", "outcome"),
		invoiceServer: desc("invoice_server_messages_total",
			"Onion messages reaching the static invoice server, by "+
				"outcome (offer_paths_sent, invoice_persisted, "+
				"invoice_served, forged, rate_limited_*, ...).",
			"outcome"),
		mbStoredMsgs: desc("mailbox_stored_messages", "Onion "+
			"messages the mailbox keeps now."),
		mbStoredBytes: desc("mailbox_stored_bytes", "Bytes of the "+
			"onion messages the mailbox keeps now."),
		mbRecipients: desc("mailbox_recipients", "Registered "+
			"mailbox recipients."),
		mbOnline: desc("mailbox_ready_recipients", "Registered "+
			"recipients online and ready for delivery."),
		mbStored: desc("mailbox_stored_total", "Messages the mailbox "+
			"stored for an offline recipient."),
		mbForwarded: desc("mailbox_forwarded_total", "Messages "+
			"forwarded at once to a ready recipient."),
		mbDelivered: desc("mailbox_delivered_total", "Stored "+
			"messages delivered later."),
		mbDropped: desc("mailbox_dropped_total", "Messages the "+
			"mailbox dropped, by reason (expired, evicted_*, "+
			"unregistered, ...).", "reason"),
		mbRegistrations: desc("mailbox_registrations_total",
			"Registration requests by result.", "result"),
	}
	m.reg.MustRegister(m, m.holdDuration, m.decisionLatency,
		newDeliveryCollector(src))
	return m
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name),
		help, labels, nil)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.heldCount, m.heldMsat,
		m.decisions, m.releases, m.failbacks, m.icptUp,
		m.icptReconnects, m.transportUp, m.heldAvailable,
		m.invoiceServer, m.mbStoredMsgs, m.mbStoredBytes, m.mbRecipients, m.mbOnline,
		m.mbStored, m.mbForwarded, m.mbDelivered, m.mbDropped,
		m.mbRegistrations} {

		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := prometheus.GaugeValue
	counter := prometheus.CounterValue
	if m.src.Engine != nil {
		s := m.src.Engine.Stats()
		ch <- prometheus.MustNewConstMetric(m.heldCount, gauge,
			float64(s.HeldCount))
		ch <- prometheus.MustNewConstMetric(m.heldMsat, gauge,
			float64(s.HeldMsat))
		for name, n := range s.Decisions {
			ch <- prometheus.MustNewConstMetric(m.decisions,
				counter, float64(n), name)
			if reason, ok := failReason(name); ok {
				ch <- prometheus.MustNewConstMetric(m.failbacks,
					counter, float64(n), reason)
			}
		}
		releases := s.Releases
		if m.src.Intake != nil {
			for k, v := range m.src.Intake() {
				releases[k] += v
			}
		}
		for outcome, n := range releases {
			ch <- prometheus.MustNewConstMetric(m.releases,
				counter, float64(n), outcome)
		}
	}
	if m.src.InterceptorConnected != nil {
		ch <- prometheus.MustNewConstMetric(m.icptUp, gauge,
			boolValue(m.src.InterceptorConnected()))
	}
	if m.src.InterceptorReconnects != nil {
		ch <- prometheus.MustNewConstMetric(m.icptReconnects, counter,
			float64(m.src.InterceptorReconnects()))
	}
	if m.src.Recipient != nil {
		for outcome, n := range m.src.Recipient() {
			ch <- prometheus.MustNewConstMetric(m.heldAvailable,
				counter, float64(n), outcome)
		}
	}
	if m.src.InvoiceServer != nil {
		for outcome, n := range m.src.InvoiceServer() {
			ch <- prometheus.MustNewConstMetric(m.invoiceServer,
				counter, float64(n), outcome)
		}
	}
	if m.src.Mailbox != nil {
		if s := m.src.Mailbox(); s != nil {
			m.collectMailbox(ch, s)
		}
	}
	if m.src.TransportConnected != nil {
		ch <- prometheus.MustNewConstMetric(m.transportUp, gauge,
			boolValue(m.src.TransportConnected()), m.src.Transport)
	}
}

func (m *Metrics) collectMailbox(ch chan<- prometheus.Metric,
	s *mailbox.Stats) {

	gauge := prometheus.GaugeValue
	counter := prometheus.CounterValue
	for _, v := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		n float64
	}{
		{m.mbStoredMsgs, gauge, float64(s.StoredMessages)},
		{m.mbStoredBytes, gauge, float64(s.StoredBytes)},
		{m.mbRecipients, gauge, float64(s.Recipients)},
		{m.mbOnline, gauge, float64(s.OnlineRecipients)},
		{m.mbStored, counter, float64(s.Stored)},
		{m.mbForwarded, counter, float64(s.ForwardedDirect)},
		{m.mbDelivered, counter, float64(s.Delivered)},
	} {
		ch <- prometheus.MustNewConstMetric(v.d, v.t, v.n)
	}
	for reason, n := range s.Dropped {
		ch <- prometheus.MustNewConstMetric(m.mbDropped, counter,
			float64(n), reason)
	}
	for result, n := range s.Registrations {
		ch <- prometheus.MustNewConstMetric(m.mbRegistrations, counter,
			float64(n), result)
	}
}

// failReason maps the engine's "fail_<reason>" decisions to fail-back
// reasons; replays of an earlier failure are not new fail-backs.
func failReason(decision string) (string, bool) {
	const prefix = "fail_"
	if len(decision) <= len(prefix) || decision[:len(prefix)] != prefix ||
		decision == "fail_replayed" {

		return "", false
	}
	return decision[len(prefix):], true
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// HoldEvent observes how long each hold lasted when it ends.
func (m *Observations) HoldEvent(ev plugin.Event) {
	if ev.Kind != plugin.EventResumed && ev.Kind != plugin.EventFailed {
		return
	}
	d := ev.HTLC.UpdatedAt.Sub(ev.HTLC.HeldAt)
	if d < 0 {
		d = 0
	}
	m.holdDuration.WithLabelValues(string(ev.Kind)).Observe(d.Seconds())
}

// ObserveDecision records how long one intercept decision took.
func (m *Observations) ObserveDecision(d time.Duration) {
	m.decisionLatency.Observe(d.Seconds())
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Serve serves /metrics on addr until ctx ends.
func (m *Metrics) Serve(ctx context.Context, addr string) (net.Addr, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(lis); err != nil &&
			!errors.Is(err, http.ErrServerClosed) {

			_ = lis.Close()
		}
	}()
	return lis.Addr(), nil
}

// TimedEngine measures every Intercept decision.
type TimedEngine struct {
	Engine interface {
		Intercept(ctx context.Context, h plugin.HTLC) plugin.Decision
	}
	Metrics DecisionObserver
}

// DecisionObserver records how long intercept decisions take.
type DecisionObserver interface {
	ObserveDecision(d time.Duration)
}

// Intercept implements the interceptor's Engine.
func (t TimedEngine) Intercept(ctx context.Context,
	h plugin.HTLC) plugin.Decision {

	start := time.Now()
	d := t.Engine.Intercept(ctx, h)
	t.Metrics.ObserveDecision(time.Since(start))
	return d
}
