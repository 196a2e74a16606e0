package daemon

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/mailbox"
	"github.com/holdd/holdd/plugin"
	flags "github.com/jessevdk/go-flags"
	"github.com/lightningnetwork/lnd/routing/route"
)

const (
	defaultConfigFilename = "holdd.conf"
	defaultRPCListen      = "127.0.0.1:8455"
	defaultLndHost        = "127.0.0.1:10009"
	defaultLndP2PAddr     = "127.0.0.1:9735"
	defaultPeerLinkListen = "127.0.0.1:0"

	// defaultLndKeepalive and defaultLndKeepaliveTimeout: a ping on the
	// gRPC connection to lnd after 30 s without traffic, and the
	// connection is dropped if no answer follows within 20 s. lnd closes
	// a connection whose client pings more often than every 5 s
	// (grpc.client-ping-min-wait), and grpc-go pings at most every 10 s.
	defaultLndKeepalive        = 30 * time.Second
	defaultLndKeepaliveTimeout = 20 * time.Second
	minLndKeepalive            = 10 * time.Second
	defaultNetwork             = "mainnet"
)

var (
	defaultHoldDir = filepath.Join(homeDir(), ".holdd")
	defaultLndDir  = filepath.Join(homeDir(), ".lnd")

	errConfig = errors.New("config")
)

type lndConfig struct {
	Host         string `long:"host" description:"lnd's gRPC address (host:port)"`
	TLSCertPath  string `long:"tlscertpath" description:"Path to lnd's tls.cert"`
	MacaroonPath string `long:"macaroonpath" description:"Path to the lnd macaroon holdd uses (see docs/operator.md for a least-privilege one)"`
	P2PAddr      string `long:"p2paddr" description:"lnd's p2p listen address (host:port); holdd connects to it as a peer to receive release messages when peerlink.listen is empty"`

	Keepalive        time.Duration `long:"keepalive" description:"Ping lnd on the gRPC connection after this long without traffic (at least 10s; lnd closes connections that ping more often than its grpc.client-ping-min-wait, 5s by default)"`
	KeepaliveTimeout time.Duration `long:"keepalivetimeout" description:"Drop the gRPC connection to lnd, and reopen the interceptor stream on a new one, when a keepalive ping is not answered within this long"`
}

type peerLinkConfig struct {
	Listen       string `long:"listen" description:"Address holdd's peer link listens on for lnd to dial it (lnd is asked to, with ConnectPeer perm=true); empty = holdd dials lnd.p2paddr instead, where lnd keeps it in a restricted slot that others can fill"`
	ExternalAddr string `long:"externaladdr" description:"host:port lnd dials to reach the peer link (default: the address peerlink.listen bound); set it when lnd runs on another host"`
}

type holdConfig struct {
	Types          []uint64      `long:"type" description:"update_add_htlc TLV type that asks for a hold; repeat for several (default 75537)"`
	FailbackMargin int32         `long:"failbackmargin" description:"Fail a held HTLC back this many blocks before lnd's auto_fail_height"`
	MaxHoldTime    time.Duration `long:"maxholdtime" description:"Fail a held HTLC back after this long (0 = no limit)"`
	MaxPerPeer     int           `long:"maxperpeer" description:"Most HTLCs one incoming peer may have held (0 = no cap)"`
	MaxPerPeerMsat uint64        `long:"maxperpeermsat" description:"Most msat one incoming peer may have held (0 = no cap)"`
	MaxTotal       int           `long:"maxtotal" description:"Most HTLCs held at once (0 = no cap)"`
	MaxTotalMsat   uint64        `long:"maxtotalmsat" description:"Most msat held at once (0 = no cap)"`
	AllowPeers     []string      `long:"allowpeer" description:"Node key (hex) whose HTLCs may be held even over a public channel; repeat for several (HTLCs over private channels are always eligible)"`
	AllowPublic    bool          `long:"allowpublic" description:"Hold HTLCs that arrive over public (announced) channels from any peer, not only those of clients with private channels and of allowpeer peers"`

	UnprovenSender string   `long:"unprovensender" description:"What to do with a hold_htlc HTLC from a peer that has not shown it reads holdd's path deliveries (release_paths_request, 48007; LDK senders never do): resume (forward it at once), fail (fail it back at once), hold (hold it anyway)" choice:"resume" choice:"fail" choice:"hold"`
	DeliveryPeers  []string `long:"deliverypeer" description:"Node key (hex) of a peer treated as reading path deliveries without sending release_paths_request; repeat for several"`
}

type releaseConfig struct {
	PathCount  int           `long:"pathcount" description:"Release paths minted for each held HTLC"`
	PathExpiry time.Duration `long:"pathexpiry" description:"Cap on how long release paths stay valid after the hold started; a held HTLC is failed back when its paths expire (0 = no cap: they last until the HTLC's fail-back height, see docs/protocol.md)"`
}

type recipientConfig struct {
	PathExpiry    time.Duration `long:"pathexpiry" description:"How long new async-receive message paths work unless holdcli addreceivepaths says otherwise"`
	ReplyBurst    int           `long:"replyburst" description:"release_held_htlc replies one receive path may send at once before the rate limit applies"`
	ReplyInterval time.Duration `long:"replyinterval" description:"After the burst, one reply per receive path per this interval"`
	Mailbox       string        `long:"mailbox" description:"Node key (hex) of the LSP whose holdd keeps onion messages for this node while it is offline (mailbox role); receive paths then run through it"`
	Server        []string      `long:"server" description:"A blinded path (hex) to a static invoice server, as holdcli addasyncrecipient prints it on the LSP; repeat for several. Set, holdd keeps an async offer there (holdcli getoffer)"`
	OfferSlots    int           `long:"offerslots" description:"How many async offers (invoice slots) to keep with the server"`
	OfferAmount   uint64        `long:"offeramount" description:"Amount in msat the async offers ask for (0: none, as LDK's)"`
}

type mailboxConfig struct {
	Open                 bool          `long:"open" description:"Keep messages for any peer that registers, not only for peers with a channel to lnd"`
	Allow                []string      `long:"allow" description:"Node key (hex) served without a channel; repeat for several"`
	MaxPerRecipient      int64         `long:"maxperrecipient" description:"Most messages kept for one recipient; the oldest go first"`
	MaxBytesPerRecipient int64         `long:"maxbytesperrecipient" description:"Most bytes kept for one recipient"`
	MaxTotal             int64         `long:"maxtotal" description:"Most messages kept in total"`
	MaxTotalBytes        int64         `long:"maxtotalbytes" description:"Most bytes kept in total"`
	MaxAge               time.Duration `long:"maxage" description:"Drop a message this long after it arrived"`
}

// serverConfig bounds the static invoice server (role=server).
type serverConfig struct {
	MaxRecipients  int           `long:"maxrecipients" description:"Most async recipients registered at once (holdcli addasyncrecipient)"`
	MaxSlots       uint16        `long:"maxslots" description:"Static invoice slots per recipient (LDK's client uses up to 10)"`
	MaxInvoiceSize int           `long:"maxinvoicesize" description:"Largest static invoice accepted, in bytes (at most 5120, LDK's limit)"`
	OfferPathTTL   time.Duration `long:"offerpathttl" description:"How long the offer paths handed to a recipient stay valid (LDK's client refuses paths that expire within 3 months)"`
	OfferPaths     int           `long:"offerpaths" description:"Blinded paths in each offer_paths answer (1-8)"`

	RecipientBurst    int           `long:"recipientburst" description:"offer_paths_request and serve_static_invoice messages one recipient may send at once before the rate limit applies"`
	RecipientInterval time.Duration `long:"recipientinterval" description:"After the burst, one such message per recipient per this interval"`

	RequesterBurst    int           `long:"requesterburst" description:"invoice_requests one requester (by its reply path's introduction node) may send at once"`
	RequesterInterval time.Duration `long:"requesterinterval" description:"After the burst, one invoice_request per requester per this interval"`

	InvoiceRequestBurst    int           `long:"invoicerequestburst" description:"invoice_requests for one recipient's offers, from all requesters together, answered at once"`
	InvoiceRequestInterval time.Duration `long:"invoicerequestinterval" description:"After the burst, one invoice_request per recipient per this interval"`
}

const (
	roleLSP       = "lsp"
	roleRecipient = "recipient"
	roleMailbox   = "mailbox"
	roleServer    = "server"
)

// knownRoles are the values role accepts.
var knownRoles = []string{roleLSP, roleRecipient, roleMailbox, roleServer}

// Config is holdd.conf and the command line, as go-flags reads them.
type Config struct {
	ShowVersion bool   `short:"V" long:"version" description:"Display version information and exit"`
	HoldDir     string `long:"holddir" description:"The base directory for holdd's data, config and logs"`
	ConfigFile  string `long:"configfile" description:"Path to holdd.conf (default <holddir>/holdd.conf)"`
	Network     string `long:"network" description:"The chain lnd runs on" choice:"mainnet" choice:"testnet" choice:"testnet4" choice:"signet" choice:"regtest" choice:"simnet"`
	DebugLevel  string `long:"debuglevel" description:"Log level for all subsystems (trace, debug, info, warn, error), optionally followed by per-subsystem levels: info,ENGN=debug,INTC=trace"`

	Retention time.Duration `long:"retention" description:"Delete records of resolved HTLCs this long after they were resolved (0 = keep forever)"`

	MaxLogFiles    int `long:"maxlogfiles" description:"Rotated log files to keep (0 = all)"`
	MaxLogFileSize int `long:"maxlogfilesize" description:"Rotate the log file at this size, in MB"`

	TLSExtraIPs     []string `long:"tlsextraip" description:"Extra IP to add to holdd's TLS certificate; repeat for several"`
	TLSExtraDomains []string `long:"tlsextradomain" description:"Extra domain to add to holdd's TLS certificate; repeat for several"`
	RPCListen       string   `long:"rpclisten" description:"Address holdd's gRPC API listens on"`

	Roles []string `long:"role" description:"What holdd does; repeat or comma-separate to combine: lsp (hold HTLCs that carry hold_htlc and release them on release_held_htlc), recipient (answer held_htlc_available on this node's async-receive paths), mailbox (keep onion messages for registered recipients while they are offline), server (static invoice server: answer invoice_requests for offline async recipients with their static invoices; an LSP runs it beside lsp). Default lsp"`

	Transport string `long:"transport" description:"How release messages reach holdd: peer (lnd 0.21+: holdd connects to lnd's p2p port), custommsg (lnd 0.18-0.20: protocol.custom-message=513), or auto (by lnd's version)" choice:"auto" choice:"peer" choice:"custommsg"`

	UnsafeAllowNoRequireInterceptor bool `long:"unsafe-allow-no-requireinterceptor" description:"Run even though lnd reports requireinterceptor off (a dropped stream then releases every held HTLC)"`

	Lnd        *lndConfig        `group:"lnd" namespace:"lnd"`
	PeerLink   *peerLinkConfig   `group:"peerlink" namespace:"peerlink"`
	Hold       *holdConfig       `group:"hold" namespace:"hold"`
	Release    *releaseConfig    `group:"release" namespace:"release"`
	Recipient  *recipientConfig  `group:"recipient" namespace:"recipient"`
	Mailbox    *mailboxConfig    `group:"mailbox" namespace:"mailbox"`
	Server     *serverConfig     `group:"server" namespace:"server"`
	Prometheus *prometheusConfig `group:"prometheus" namespace:"prometheus"`
}

type prometheusConfig struct {
	Listen string `long:"listen" description:"Serve Prometheus metrics on this address (host:port) at /metrics; empty = off"`
}

func defaultConfig() *Config {
	p := plugin.DefaultPolicy()
	return &Config{
		HoldDir:        defaultHoldDir,
		Network:        defaultNetwork,
		DebugLevel:     "info",
		MaxLogFiles:    3,
		Retention:      30 * 24 * time.Hour,
		MaxLogFileSize: 10,
		Transport:      transportAuto,
		RPCListen:      defaultRPCListen,
		Lnd: &lndConfig{
			Host:             defaultLndHost,
			P2PAddr:          defaultLndP2PAddr,
			Keepalive:        defaultLndKeepalive,
			KeepaliveTimeout: defaultLndKeepaliveTimeout,
		},
		PeerLink: &peerLinkConfig{
			Listen: defaultPeerLinkListen,
		},
		Hold: &holdConfig{
			UnprovenSender: string(plugin.UnprovenResume),
			FailbackMargin: p.FailbackMargin,
			MaxPerPeer:     p.MaxHeldPerPeer,
			MaxPerPeerMsat: p.MaxHeldMsatPerPeer,
			MaxTotal:       p.MaxHeldTotal,
		},
		Prometheus: &prometheusConfig{},
		Recipient: &recipientConfig{
			PathExpiry:    30 * 24 * time.Hour,
			ReplyBurst:    20,
			ReplyInterval: 3 * time.Second,
			OfferSlots:    1,
		},
		Mailbox: &mailboxConfig{
			MaxPerRecipient:      mailbox.DefaultMaxPerRecipient,
			MaxBytesPerRecipient: mailbox.DefaultMaxBytesPerRecipient,
			MaxTotal:             mailbox.DefaultMaxTotal,
			MaxTotalBytes:        mailbox.DefaultMaxTotalBytes,
			MaxAge:               mailbox.DefaultMaxAge,
		},
		Release: &releaseConfig{
			PathCount: 2,
		},
		Server: &serverConfig{
			MaxRecipients:  invoiceserver.DefaultMaxRecipients,
			MaxSlots:       invoiceserver.DefaultMaxSlots,
			MaxInvoiceSize: invoiceserver.MaxInvoiceSize,
			OfferPathTTL:   invoiceserver.DefaultOfferPathTTL,
			OfferPaths:     1,

			RecipientBurst:    invoiceserver.DefaultBurst,
			RecipientInterval: invoiceserver.DefaultInterval,
			RequesterBurst:    invoiceserver.DefaultBurst,
			RequesterInterval: invoiceserver.DefaultInterval,

			InvoiceRequestBurst: invoiceserver.
				DefaultInvoiceRequestBurst,
			InvoiceRequestInterval: invoiceserver.
				DefaultInvoiceRequestInterval,
		},
	}
}

// LoadConfig reads flags, then the config file, then flags again so that
// the command line wins, as lnd does.
func LoadConfig(args []string) (*Config, error) {
	pre := defaultConfig()
	if _, err := flags.NewParser(pre, flags.Default).ParseArgs(args); err != nil {
		return nil, err
	}
	if pre.ShowVersion {
		return pre, nil
	}

	cfg := defaultConfig()
	holdDir := cleanPath(pre.HoldDir)
	configFile := filepath.Join(holdDir, defaultConfigFilename)
	if pre.ConfigFile != "" {
		configFile = cleanPath(pre.ConfigFile)
	}
	parser := flags.NewParser(cfg, flags.Default)
	err := flags.NewIniParser(parser).ParseFile(configFile)
	if err != nil {
		var pathErr *os.PathError
		// A missing default file is fine; a missing explicit one is not.
		if !errors.As(err, &pathErr) || pre.ConfigFile != "" {
			return nil, fmt.Errorf("%w: %s: %v", errConfig,
				configFile, err)
		}
	}
	if _, err := parser.ParseArgs(args); err != nil {
		return nil, err
	}
	cfg.ConfigFile = configFile
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validate checks the config and fills in paths that depend on others.
func (c *Config) validate() error {
	c.HoldDir = cleanPath(c.HoldDir)

	// lnd names its per-network macaroon directory after the network.
	lndNet := c.Network
	if c.Lnd.TLSCertPath == "" {
		c.Lnd.TLSCertPath = filepath.Join(defaultLndDir, "tls.cert")
	}
	if c.Lnd.MacaroonPath == "" {
		c.Lnd.MacaroonPath = filepath.Join(defaultLndDir, "data",
			"chain", "bitcoin", lndNet, "admin.macaroon")
	}
	c.Lnd.TLSCertPath = cleanPath(c.Lnd.TLSCertPath)
	c.Lnd.MacaroonPath = cleanPath(c.Lnd.MacaroonPath)

	if c.Lnd.P2PAddr == "" {
		return fmt.Errorf("%w: lnd.p2paddr is required: holdd connects "+
			"to lnd's p2p port to receive release messages", errConfig)
	}
	if _, _, err := net.SplitHostPort(c.Lnd.P2PAddr); err != nil {
		return fmt.Errorf("%w: lnd.p2paddr %q: %v", errConfig,
			c.Lnd.P2PAddr, err)
	}
	if c.Lnd.Keepalive < minLndKeepalive || c.Lnd.KeepaliveTimeout <= 0 {
		return fmt.Errorf("%w: lnd.keepalive must be at least %v and "+
			"lnd.keepalivetimeout positive", errConfig,
			minLndKeepalive)
	}
	if c.PeerLink.Listen != "" {
		if _, _, err := net.SplitHostPort(c.PeerLink.Listen); err != nil {
			return fmt.Errorf("%w: peerlink.listen %q: %v", errConfig,
				c.PeerLink.Listen, err)
		}
	}
	if a := c.PeerLink.ExternalAddr; a != "" {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" || port == "0" {
			return fmt.Errorf("%w: peerlink.externaladdr %q must be "+
				"host:port", errConfig, a)
		}
		if c.PeerLink.Listen == "" {
			return fmt.Errorf("%w: peerlink.externaladdr needs "+
				"peerlink.listen", errConfig)
		}
	}
	if _, _, err := parseDebugLevel(c.DebugLevel); err != nil {
		return err
	}
	if c.MaxLogFileSize < 1 || c.MaxLogFiles < 0 {
		return fmt.Errorf("%w: maxlogfilesize must be at least 1 (MB) "+
			"and maxlogfiles at least 0", errConfig)
	}
	for _, ip := range c.TLSExtraIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%w: tlsextraip %q is not an IP",
				errConfig, ip)
		}
	}
	if c.Release.PathCount < 1 || c.Release.PathCount > 8 {
		return fmt.Errorf("%w: release.pathcount must be 1..8, got %d",
			errConfig, c.Release.PathCount)
	}
	if c.Release.PathExpiry != 0 && c.Release.PathExpiry < time.Minute {
		return fmt.Errorf("%w: release.pathexpiry must be 0 (no cap) "+
			"or at least 1m", errConfig)
	}
	if _, err := c.policy(); err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	roles, err := parseRoles(c.Roles)
	if err != nil {
		return err
	}
	c.Roles = roles
	if c.Recipient.PathExpiry < time.Minute ||
		c.Recipient.ReplyBurst < 1 || c.Recipient.ReplyInterval <= 0 {

		return fmt.Errorf("%w: recipient.pathexpiry must be at least "+
			"1m, recipient.replyburst at least 1 and "+
			"recipient.replyinterval positive", errConfig)
	}
	if err := c.Server.validate(); err != nil {
		return err
	}
	if c.Recipient.Mailbox != "" {
		if _, err := parseNodeKey(c.Recipient.Mailbox); err != nil {
			return fmt.Errorf("%w: recipient.mailbox: %v", errConfig,
				err)
		}
	}
	if _, err := c.Recipient.serverPaths(); err != nil {
		return err
	}
	if c.Recipient.OfferSlots < 1 || c.Recipient.OfferSlots > maxOfferSlots {
		return fmt.Errorf("%w: recipient.offerslots must be 1..%d",
			errConfig, maxOfferSlots)
	}
	if _, err := c.admission(); err != nil {
		return err
	}
	if _, err := plugin.ParseUnprovenSenderMode(
		c.Hold.UnprovenSender); err != nil {

		return fmt.Errorf("%w: hold.unprovensender: %v", errConfig, err)
	}
	for _, k := range c.Hold.DeliveryPeers {
		if _, err := parseNodeKey(k); err != nil {
			return fmt.Errorf("%w: hold.deliverypeer: %v", errConfig,
				err)
		}
	}
	for _, k := range c.Mailbox.Allow {
		if _, err := parseNodeKey(k); err != nil {
			return fmt.Errorf("%w: mailbox.allow: %v", errConfig, err)
		}
	}
	m := c.Mailbox
	if m.MaxPerRecipient < 1 || m.MaxBytesPerRecipient < 1 ||
		m.MaxTotal < m.MaxPerRecipient ||
		m.MaxTotalBytes < m.MaxBytesPerRecipient ||
		m.MaxAge < 10*time.Second {

		return fmt.Errorf("%w: mailbox limits must be positive, the "+
			"totals at least the per-recipient ones, and maxage at "+
			"least 10s", errConfig)
	}
	return nil
}

// parseNodeKey parses a compressed node key in hex.
func parseNodeKey(s string) (route.Vertex, error) {
	if _, err := hex.DecodeString(s); err != nil {
		return route.Vertex{}, fmt.Errorf("%q is not hex", s)
	}
	key, err := route.NewVertexFromStr(s)
	if err != nil {
		return key, fmt.Errorf("%q is not a compressed node key", s)
	}
	if _, err := btcec.ParsePubKey(key[:]); err != nil {
		return key, fmt.Errorf("%q is not a compressed node key", s)
	}
	return key, nil
}

// parseRoles turns repeated and comma-separated role options into a sorted
// set; none means lsp, what holdd was first built for.
func parseRoles(in []string) ([]string, error) {
	set := make(map[string]bool)
	for _, opt := range in {
		for _, r := range strings.Split(opt, ",") {
			r = strings.ToLower(strings.TrimSpace(r))
			if r == "" {
				continue
			}
			if !slices.Contains(knownRoles, r) {
				return nil, fmt.Errorf("%w: unknown role %q (known: "+
					"%s)", errConfig, r,
					strings.Join(knownRoles, ", "))
			}
			set[r] = true
		}
	}
	if len(set) == 0 {
		set[roleLSP] = true
	}
	var out []string
	for _, r := range knownRoles {
		if set[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

// validate checks the server's bounds; zero would silently mean the
// default in invoiceserver.Config, so it is refused here.
func (s *serverConfig) validate() error {
	switch {
	case s.MaxRecipients < 1 || s.MaxSlots < 1:
		return fmt.Errorf("%w: server.maxrecipients and server.maxslots "+
			"must be at least 1", errConfig)
	case s.MaxInvoiceSize < 1 ||
		s.MaxInvoiceSize > invoiceserver.MaxInvoiceSize:

		return fmt.Errorf("%w: server.maxinvoicesize must be 1..%d",
			errConfig, invoiceserver.MaxInvoiceSize)
	case s.OfferPathTTL < time.Hour:
		return fmt.Errorf("%w: server.offerpathttl must be at least 1h",
			errConfig)
	case s.OfferPaths < 1 || s.OfferPaths > invoiceserver.MaxPathsPerCall:
		return fmt.Errorf("%w: server.offerpaths must be 1..%d",
			errConfig, invoiceserver.MaxPathsPerCall)
	case s.RecipientBurst < 1 || s.RequesterBurst < 1 ||
		s.InvoiceRequestBurst < 1:

		return fmt.Errorf("%w: the server's bursts must be at least 1",
			errConfig)
	case s.RecipientInterval <= 0 || s.RequesterInterval <= 0 ||
		s.InvoiceRequestInterval <= 0:

		return fmt.Errorf("%w: the server's intervals must be positive",
			errConfig)
	}
	return nil
}

// hasRole reports whether holdd runs role.
func (c *Config) hasRole(role string) bool {
	return slices.Contains(c.Roles, role)
}

// policy turns the hold settings into the engine's policy.
func (c *Config) policy() (plugin.Policy, error) {
	p := plugin.DefaultPolicy()
	if len(c.Hold.Types) > 0 {
		p.HoldTypes = c.Hold.Types
	}
	p.FailbackMargin = c.Hold.FailbackMargin
	p.MaxHoldTime = c.Hold.MaxHoldTime
	p.MaxHeldPerPeer = c.Hold.MaxPerPeer
	p.MaxHeldMsatPerPeer = c.Hold.MaxPerPeerMsat
	p.MaxHeldTotal = c.Hold.MaxTotal
	p.MaxHeldMsatTotal = c.Hold.MaxTotalMsat
	return p, p.Validate()
}

// admission turns the hold settings into whose HTLCs the engine may hold.
func (c *Config) admission() (plugin.Admission, error) {
	a := plugin.Admission{AllowPublic: c.Hold.AllowPublic}
	for _, k := range c.Hold.AllowPeers {
		key, err := parseNodeKey(k)
		if err != nil {
			return a, fmt.Errorf("%w: hold.allowpeer: %v", errConfig,
				err)
		}
		if a.AllowPeers == nil {
			a.AllowPeers = make(map[route.Vertex]bool)
		}
		a.AllowPeers[key] = true
	}
	return a, nil
}

// dataDir is where the store lives: one per network, so a regtest run never
// touches mainnet state.
func (c *Config) dataDir() string {
	return filepath.Join(c.HoldDir, "data", c.Network)
}

func homeDir() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return "."
	}
	return h
}

func cleanPath(p string) string {
	if strings.HasPrefix(p, "~") {
		p = filepath.Join(homeDir(), p[1:])
	}
	return filepath.Clean(os.ExpandEnv(p))
}
