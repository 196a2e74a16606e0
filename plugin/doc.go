// Package plugin is holdd's hold engine: the state machine that decides, for
// every intercepted HTLC, whether it passes through, is held, or is failed
// back, and that later resumes or fails each held HTLC. It owns the policy
// (hold types, expiry margin, caps, maximum hold time) and the rule that every
// state change is persisted before lnd hears of it. It knows nothing about how
// HTLCs or releases arrive: the interceptor and the release intake call it,
// and it answers lnd through the Resolver it is given.
//
// States of a held HTLC (HoldState):
//
//	        release                 resume sent
//	held ──────────────▶ released ──────────────▶ resumed
//	  │                     │
//	  │ fail-back height,   │ fail-back height
//	  │ max hold time,      │
//	  ▼ manual              ▼
//	failed ◀────────────────┘
//
// An HTLC without a configured hold type passes through and is never stored.
package plugin
