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
//
// Every entry point (intercept, release, manual fail, block, tick, an
// incoming link coming back) reads what it knows about one circuit key
// with that key locked, asks a pure function in decide.go what to do, and
// applies the answer: one store write first, then the answer to lnd. Why
// an HTLC was held, resumed or failed is in decide.go. The blocks, the
// clock and lnd's links (LinkSource) are the engine's inputs besides the
// HTLCs and the releases: a released HTLC is resumed only over an active
// incoming link (mayResume).
package plugin
