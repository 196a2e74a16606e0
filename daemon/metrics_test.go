package daemon

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/holdd/holdd/metrics"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/peerlink"
	"github.com/stretchr/testify/require"
)

// TestMetricsWithoutLSPRole: without the lsp role (a recipient, a mailbox)
// the metrics still report releases the intake counted, nothing held, the
// interceptor down and the transport's state.
func TestMetricsWithoutLSPRole(t *testing.T) {
	intake := release.NewIntake(nil, nil, nil, nil, quietLog())
	intake.CountDrop("forged")
	link := &linkStatus{}
	link.set(peerlink.StateConnected)
	reg := metrics.NewWithObservations(metricsSources(transportPeer, link,
		intake, nil, nil, nil, nil), metrics.NewObservations())

	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics",
		nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	for _, line := range []string{
		`holdd_releases_total{outcome="forged"} 1`,
		"holdd_held_htlcs 0",
		"holdd_interceptor_connected 0",
		"holdd_interceptor_reconnects_total 0",
		`holdd_transport_connected{transport="peer"} 1`,
	} {
		require.Contains(t, string(body), line+"\n")
	}
}
