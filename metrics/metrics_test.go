package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/stretchr/testify/require"
)

type fakeEngine struct{ stats plugin.Stats }

func (f fakeEngine) Stats() plugin.Stats { return f.stats }

func (f fakeEngine) Intercept(context.Context, plugin.HTLC) plugin.Decision {
	return plugin.Decision{Action: plugin.ActionHold}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

func TestScrape(t *testing.T) {
	eng := fakeEngine{stats: plugin.Stats{
		HeldCount: 2,
		HeldMsat:  3_000_500,
		Decisions: map[string]uint64{"pass": 10, "hold": 3,
			"fail_expiry": 1, "fail_cap_total_count": 2,
			"fail_replayed": 5},
		Releases: map[string]uint64{"matched": 4, "duplicate": 1},
	}}
	m := New(Sources{
		Engine: eng,
		Intake: func() map[string]uint64 {
			return map[string]uint64{"forged": 7, "matched": 0}
		},
		InterceptorConnected:  func() bool { return true },
		InterceptorReconnects: func() uint64 { return 3 },
		Transport:             "peer",
		TransportConnected:    func() bool { return false },
		Recipient: func() map[string]uint64 {
			return map[string]uint64{"replied": 5, "forged": 2}
		},
		InvoiceServer: func() map[string]uint64 {
			return map[string]uint64{"invoice_served": 6,
				"rate_limited_requester": 1}
		},
	})

	held := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.HoldEvent(plugin.Event{Kind: plugin.EventResumed, HTLC: plugin.HeldHTLC{
		HeldAt: held, UpdatedAt: held.Add(90 * time.Second)}})
	m.HoldEvent(plugin.Event{Kind: plugin.EventHeld, HTLC: plugin.HeldHTLC{
		HeldAt: held, UpdatedAt: held}})
	TimedEngine{Engine: eng, Metrics: m}.Intercept(context.Background(),
		plugin.HTLC{})

	out := scrape(t, m)
	for _, line := range []string{
		"holdd_held_htlcs 2",
		"holdd_held_msat 3.0005e+06",
		`holdd_decisions_total{decision="pass"} 10`,
		`holdd_decisions_total{decision="hold"} 3`,
		`holdd_failbacks_total{reason="expiry"} 1`,
		`holdd_failbacks_total{reason="cap_total_count"} 2`,
		`holdd_releases_total{outcome="matched"} 4`,
		`holdd_releases_total{outcome="duplicate"} 1`,
		`holdd_releases_total{outcome="forged"} 7`,
		"holdd_interceptor_connected 1",
		"holdd_interceptor_reconnects_total 3",
		`holdd_transport_connected{transport="peer"} 0`,
		`holdd_hold_duration_seconds_count{outcome="resumed"} 1`,
		`holdd_hold_duration_seconds_sum{outcome="resumed"} 90`,
		`holdd_hold_duration_seconds_bucket{outcome="resumed",le="64"} 0`,
		`holdd_hold_duration_seconds_bucket{outcome="resumed",le="256"} 1`,
		"holdd_decision_latency_seconds_count 1",
		`holdd_held_htlc_available_total{outcome="replied"} 5`,
		`holdd_held_htlc_available_total{outcome="forged"} 2`,
		`holdd_invoice_server_messages_total{outcome="invoice_served"} 6`,
		`holdd_invoice_server_messages_total{outcome="rate_limited_requester"} 1`,
	} {
		require.Contains(t, out, line+"\n")
	}
	// A replayed failure is not a new fail-back, and held is not an end.
	require.NotContains(t, out, `reason="replayed"`)
	require.NotContains(t, out, `outcome="held"`)
	require.Equal(t, 1, strings.Count(out, "holdd_hold_duration_seconds_count"))
}

func TestServe(t *testing.T) {
	m := New(Sources{Engine: fakeEngine{stats: plugin.Stats{HeldCount: 1}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "holdd_held_htlcs 1\n")
}

// TestScrapeDeliveryCounters: the path-request and redelivery counters
// appear with their outcomes.
func TestScrapeDeliveryCounters(t *testing.T) {
	m := New(Sources{
		PathRequests: func() map[string]uint64 {
			return map[string]uint64{"hello": 2, "unknown": 1}
		},
		Redeliveries: func() map[string]uint64 {
			return map[string]uint64{"sent": 3}
		},
	})
	body := scrape(t, m)
	for _, line := range []string{
		`holdd_path_requests_total{outcome="hello"} 2`,
		`holdd_path_requests_total{outcome="unknown"} 1`,
		`holdd_path_redeliveries_total{outcome="sent"} 3`,
	} {
		require.Contains(t, body, line)
	}
}
