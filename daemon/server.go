package daemon

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/sirupsen/logrus"
)

// serverPathIDSecret keys the static invoice server's path_ids. It is a
// secret of its own, not the release secret: the server's paths live a
// year and are handed to wallets, and rotating one secret should not
// void the other's paths.
const serverPathIDSecret = "invoice_server_path_id_hmac"

const (
	// serverQueueDepth bounds the messages waiting for the server's
	// workers; beyond it they are dropped and counted, so that a flood
	// never blocks the transport's read loop.
	serverQueueDepth = 1024

	// serverWorkers handle messages concurrently: each does a store
	// read or write and a send through lnd.
	serverWorkers = 4

	// OutcomeServerBusy counts messages dropped because the queue in
	// front of the server was full or the role was stopping.
	outcomeServerBusy = "dropped_busy"
)

// serverRole is the server role: the static invoice server, fed by the
// intake through a bounded queue and worked off by a few goroutines.
type serverRole struct {
	srv *invoiceserver.Server
	log logrus.FieldLogger

	queue chan *onionmsg.Peeled

	mu      sync.Mutex
	running bool
	busy    uint64
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// newServerRole builds the static invoice server; nothing runs until
// Start. finalHop is where its paths end (nil: at lnd, the custom-message
// transport).
func newServerRole(ctx context.Context, cfg *Config, lnd *rpcclient.Client,
	db *store.Store, finalHop *btcec.PublicKey, sender *onionsend.Sender,
	clk clock.Clock, logs *loggers) (*serverRole, error) {

	secret, err := db.Secret(ctx, serverPathIDSecret, randomSecret)
	if err != nil {
		return nil, fmt.Errorf("invoice server secret: %w", err)
	}
	auth, err := invoiceserver.NewAuthenticator(secret)
	if err != nil {
		return nil, err
	}
	minter, err := invoiceserver.NewHopMinter(lnd.IdentityKey, finalHop)
	if err != nil {
		return nil, err
	}
	chain, err := chainHash(cfg.Network)
	if err != nil {
		return nil, err
	}
	log := logs.sub(subISRV)
	srv, err := invoiceserver.New(invoiceserver.Config{
		Auth:      auth,
		Minter:    minter,
		Store:     db,
		Sender:    serverSender{sender},
		Forwarder: invoiceRequestForwarder{sender},
		Chain:     chain,
		Clock:     clk,
		Log:       log,

		MaxRecipients:  cfg.Server.MaxRecipients,
		MaxSlots:       cfg.Server.MaxSlots,
		MaxInvoiceSize: cfg.Server.MaxInvoiceSize,
		OfferPathTTL:   cfg.Server.OfferPathTTL,
		OfferPaths:     cfg.Server.OfferPaths,

		RecipientBurst:         cfg.Server.RecipientBurst,
		RecipientInterval:      cfg.Server.RecipientInterval,
		RequesterBurst:         cfg.Server.RequesterBurst,
		RequesterInterval:      cfg.Server.RequesterInterval,
		InvoiceRequestBurst:    cfg.Server.InvoiceRequestBurst,
		InvoiceRequestInterval: cfg.Server.InvoiceRequestInterval,
	})
	if err != nil {
		return nil, err
	}
	return &serverRole{
		srv:   srv,
		log:   log,
		queue: make(chan *onionmsg.Peeled, serverQueueDepth),
	}, nil
}

// chainHash is the genesis hash bolt12 names network's chain by.
func chainHash(network string) (chainhash.Hash, error) {
	chain, err := bolt12.NetworkChain(network)
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("%w: %w", errConfig, err)
	}
	return chain, nil
}

// matchServerPath reports whether a path_id is shaped like one of the
// server's; the server authenticates it.
func matchServerPath(pathID []byte) bool {
	_, ok := invoiceserver.KindOf(pathID)
	return ok
}

func (r *serverRole) Name() string { return "server role" }

// Start starts the workers.
func (r *serverRole) Start(ctx context.Context, _ func(error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx, r.cancel = context.WithCancel(ctx)
	for range serverWorkers {
		r.wg.Add(1)
		go r.work()
	}
	r.running = true
	r.log.Infof("Static invoice server on")
	return nil
}

// Stop refuses further messages, ends the workers and waits for them;
// messages still queued are dropped (their senders retry).
func (r *serverRole) Stop() error {
	r.mu.Lock()
	r.running = false
	r.cancel()
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

func (r *serverRole) work() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case p := <-r.queue:
			r.log.Debugf("Static invoice server: %s",
				r.srv.Handle(r.ctx, p))
		}
	}
}

// HandleFinalHop queues a message for the server without waiting for it;
// it implements release.FinalHopHandler. The server counts what it does
// with the message; a full queue is counted here.
func (r *serverRole) HandleFinalHop(_ context.Context,
	p *onionmsg.Peeled) string {

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		select {
		case r.queue <- p:
			return "invoice_server_queued"
		default:
		}
	}
	r.busy++
	return outcomeServerBusy
}

// Counts returns the server's outcomes and the queue's drops.
func (r *serverRole) Counts() map[string]uint64 {
	c := r.srv.Counts()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy > 0 {
		c = maps.Clone(c)
		c[outcomeServerBusy] += r.busy
	}
	return c
}

// serverSender sends the server's replies through lnd.
type serverSender struct {
	s *onionsend.Sender
}

func (s serverSender) Send(ctx context.Context, path,
	replyPath *onionmsg.BlindedPath, finalTLVs map[uint64][]byte) error {

	_, err := s.s.Send(ctx, path, replyPath, finalTLVs)
	return err
}

// invoiceRequestForwarder forwards an invoice_request (onionmsg TLV 64)
// along the recipient's forward_invoice_request_path through lnd. When
// the recipient uses this holdd's mailbox its paths run through the
// mailbox hop (lnd → holdd → recipient), so the message comes back to
// this holdd's intake as a forward and the mailbox keeps it while the
// recipient is offline.
type invoiceRequestForwarder struct {
	s *onionsend.Sender
}

func (f invoiceRequestForwarder) ForwardInvoiceRequest(ctx context.Context,
	path, replyPath *onionmsg.BlindedPath, invoiceRequest []byte) error {

	_, err := f.s.Send(ctx, path, replyPath, map[uint64][]byte{
		onionmsg.InvoiceRequestType: invoiceRequest,
	})
	return err
}
