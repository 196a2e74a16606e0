package peerlink

import (
	"fmt"

	"github.com/lightningnetwork/lnd/lnwire"
)

// State is the link's connection state.
type State int

const (
	// StateDisconnected: no connection (stopped, or waiting to retry).
	StateDisconnected State = iota

	// StateConnecting: dialling, Noise handshake or Init exchange.
	StateConnecting

	// StateConnected: Init exchanged; lnd can forward onion messages to
	// us.
	StateConnected
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

// Stats are the link's counters since New.
type Stats struct {
	// Connects counts links that completed the Init exchange.
	Connects uint64

	// Disconnects counts such links that went down again.
	Disconnects uint64

	// FailedAttempts counts attempts that ended before Init completed.
	FailedAttempts uint64

	// MessagesReceived counts every message read after the handshake,
	// by wire type, including ones that were ignored.
	MessagesReceived map[lnwire.MessageType]uint64

	// Ignored counts messages received and deliberately ignored: unknown
	// odd types, custom types and known types the link has no use for.
	Ignored uint64

	// PingsAnswered counts pongs we sent for lnd's pings.
	PingsAnswered uint64

	// PingsSent and PongsMatched count our own liveness pings and the
	// pongs that answered them.
	PingsSent    uint64
	PongsMatched uint64

	// Rejected counts inbound connections refused before Init (listen
	// mode): a failed Noise handshake or a key other than lnd's.
	Rejected uint64

	// DialRequests counts the times the link asked lnd to dial it
	// (listen mode), DialRequestsFailed those lnd refused or missed.
	DialRequests       uint64
	DialRequestsFailed uint64
}

// clone returns a deep copy, so callers cannot race with the link.
func (s Stats) clone() Stats {
	c := s
	c.MessagesReceived = make(
		map[lnwire.MessageType]uint64, len(s.MessagesReceived),
	)
	for k, v := range s.MessagesReceived {
		c.MessagesReceived[k] = v
	}

	return c
}
