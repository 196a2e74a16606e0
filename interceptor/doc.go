// Package interceptor owns holdd's one HtlcInterceptor stream to lnd. It
// reconnects with capped backoff, hands every offered HTLC to the hold engine,
// and sends a resolution only for a circuit key that lnd offered on the
// current stream and that has not been resolved on it yet: lnd ends the stream
// on any bad resolution, and without requireinterceptor that would release
// every held HTLC.
package interceptor
