// Package daemon owns holdd as a running process: its config (holdd.conf
// and the command line), its log subsystems, the checks of lnd's settings,
// and the subsystems it runs (the lsp, recipient and mailbox roles, the
// release transport, the RPC and metrics servers, the pruner).
//
// New builds every subsystem without starting any, handing each the others
// it reads; Run starts them in order, waits for a shutdown or a subsystem's
// fatal error, and stops them in reverse. cmd/holdd only parses the command
// line and calls Run.
package daemon
