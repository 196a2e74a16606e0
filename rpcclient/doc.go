// Package rpcclient owns holdd's gRPC connection to lnd: TLS, the macaroon,
// and the start-up checks (network, version, required sub-servers) that fail
// with a message naming the setting to fix. Everything else in holdd talks to
// lnd through small interfaces over the clients exposed here.
package rpcclient
