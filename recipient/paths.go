package recipient

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
)

// MaxPathsPerCall bounds how many paths one AddPaths call mints.
const MaxPathsPerCall = 16

var (
	// ErrInvalidRequest is returned for a path request holdd refuses.
	ErrInvalidRequest = errors.New("invalid receive path request")

	// ErrMailboxPending is returned while the mailbox this node wants
	// its paths to run through has not accepted it yet.
	ErrMailboxPending = errors.New("mailbox registration pending")
)

// Mailbox is the LSP whose mailbox stores messages for this recipient while
// it is offline: paths then enter at the LSP's lnd and pass its mailbox.
type Mailbox struct {
	// LSPKey is the LSP's lnd node key, the paths' introduction node.
	LSPKey *btcec.PublicKey

	// MailboxKey is the LSP holdd's peer-link key, the hop that stores.
	MailboxKey *btcec.PublicKey
}

// hops returns the path's hops: [mailbox LSP -> mailbox ->] lnd [-> holdd].
// With a nil holddKey lnd is the final hop (custom-message transport on lnd
// before 0.21, where holdd reads lnd's own final hop).
func hops(pathID []byte, lndKey, holddKey *btcec.PublicKey,
	mb *Mailbox) []onionmsg.Hop {

	var out []onionmsg.Hop
	if mb != nil {
		out = append(out, onionmsg.ForwardHop(mb.LSPKey, mb.MailboxKey),
			onionmsg.ForwardHop(mb.MailboxKey, lndKey))
	}
	return append(out, onionmsg.HopsToHoldd(lndKey, holddKey, pathID)...)
}

// MintPath mints a blinded message path to this node that ends in pathID:
// [lnd -> holdd], or with a mailbox [mailbox -> lnd -> holdd]. It stores
// nothing. The async offer client's forward_invoice_request_path is one,
// so that an invoice_request the static invoice server forwards while
// this node is offline waits in the mailbox. The mailbox path enters at
// the mailbox itself, not at its LSP's lnd as receive paths do: the
// sender is the server in the mailbox's own holdd, whose lnd has the
// mailbox as a peer and cannot send a message to itself
// (onionsend.ErrIntroIsSelf). It returns ErrMailboxPending while a wanted
// mailbox has not accepted this node yet.
func (r *Responder) MintPath(sessionKey *btcec.PrivateKey,
	pathID []byte) (*onionmsg.BlindedPath, error) {

	mb, err := r.mailbox()
	if err != nil {
		return nil, err
	}
	hs := hops(pathID, r.cfg.LndKey, r.cfg.HolddKey, mb)
	if mb != nil {
		// Drop [LSP's lnd -> mailbox]: the path enters at the mailbox.
		hs = hs[1:]
	}
	path, err := onionmsg.BuildBlindedPath(sessionKey, hs, true)
	if err != nil {
		return nil, fmt.Errorf("build message path: %w", err)
	}
	return path, nil
}

// AddPaths mints n new receive paths valid for ttl, stores them, and returns
// them. Each has its own id and session key, so paths cannot be linked.
func (r *Responder) AddPaths(ctx context.Context, n int,
	ttl time.Duration) ([]ReceivePath, error) {

	if n < 1 || n > MaxPathsPerCall {
		return nil, fmt.Errorf("%w: count %d, want 1..%d",
			ErrInvalidRequest, n, MaxPathsPerCall)
	}
	if ttl <= 0 {
		ttl = r.cfg.PathTTL
	}
	if ttl < time.Minute {
		return nil, fmt.Errorf("%w: expiry %v is under a minute",
			ErrInvalidRequest, ttl)
	}
	mb, err := r.mailbox()
	if err != nil {
		return nil, err
	}
	now := r.cfg.Clock.Now()
	out := make([]ReceivePath, 0, n)
	for range n {
		var id [8]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, err
		}
		// path_ids carry whole seconds; round down so the stored
		// expiry is the one the path_id proves.
		expires := time.Unix(now.Add(ttl).Unix(), 0).UTC()
		pathID := r.cfg.Auth.MintReceive(release.ReceiveClaim{
			PathID: id, ExpiresAt: expires,
		})
		sessionKey, err := r.newSessionKey()
		if err != nil {
			return nil, err
		}
		path, err := onionmsg.BuildBlindedPath(sessionKey,
			hops(pathID, r.cfg.LndKey, r.cfg.HolddKey, mb), true)
		if err != nil {
			return nil, fmt.Errorf("build receive path: %w", err)
		}
		raw, err := path.Bytes()
		if err != nil {
			return nil, err
		}
		p := ReceivePath{
			ID: id, Path: raw, CreatedAt: now, ExpiresAt: expires,
		}
		if mb != nil {
			p.MailboxLSP = mb.LSPKey.SerializeCompressed()
		}
		if err := r.cfg.Store.InsertReceivePath(ctx, p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	r.cfg.Logger.Infof("Minted %d receive path(s) valid until %v%s", n,
		out[0].ExpiresAt.UTC(), mailboxNote(mb))
	return out, nil
}

func mailboxNote(mb *Mailbox) string {
	if mb == nil {
		return ""
	}
	return fmt.Sprintf(" through the mailbox of %x",
		mb.LSPKey.SerializeCompressed())
}

// ListPaths returns the usable paths, or all of them.
func (r *Responder) ListPaths(ctx context.Context,
	all bool) ([]ReceivePath, error) {

	return r.cfg.Store.ListReceivePaths(ctx, r.cfg.Clock.Now(), all)
}

// RevokePath stops answering over a path.
func (r *Responder) RevokePath(ctx context.Context, id [8]byte) error {
	if err := r.cfg.Store.RevokeReceivePath(ctx, id,
		r.cfg.Clock.Now()); err != nil {

		return err
	}
	r.limiter.Forget(id)
	r.cfg.Logger.Infof("Revoked receive path %x", id)
	return nil
}
