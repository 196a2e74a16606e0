// Command holdcli is holdd's command-line client, modelled on lnd's lncli:
// it dials holdd's gRPC API over TLS with a macaroon, runs one command per
// API method and prints the answers as lncli-style JSON. It owns nothing but
// the command-line surface; docs/cli.md is generated from its command
// definitions (holdcli generatemanual).
package main
