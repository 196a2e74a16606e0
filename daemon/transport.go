package daemon

import (
	"fmt"
	"net"
	"strings"

	"github.com/holdd/holdd/rpcclient"
)

const (
	transportAuto      = "auto"
	transportPeer      = "peer"
	transportCustomMsg = "custommsg"
)

// nativeOnionMessages is the first lnd release that handles onion messages
// itself and forwards them to connected peers.
var nativeOnionMessages = rpcclient.Version{Major: 0, Minor: 21}

// chooseTransport picks how release messages reach holdd. lndConfig is lnd's
// flattened config from GetDebugInfo, or nil when holdd cannot read it. It
// returns the transport and the reason, for the start-up log.
func chooseTransport(want string, version rpcclient.Version,
	lndConfig map[string]string) (string, string, error) {

	native := !version.Less(nativeOnionMessages)
	override, known := customMessageOverride(lndConfig)

	switch want {
	case transportPeer:
		if !native {
			return "", "", fmt.Errorf("%w: transport=peer needs lnd "+
				"%s or newer to forward onion messages; lnd is %s: "+
				"use transport=custommsg with "+
				"protocol.custom-message=513 in lnd.conf", errConfig,
				nativeOnionMessages, version)
		}
		return transportPeer, "configured", nil

	case transportCustomMsg:
		if native {
			return "", "", fmt.Errorf("%w: transport=custommsg does "+
				"not work on lnd %s: since 0.21 lnd handles type "+
				"513 itself and no longer hands it to "+
				"SubscribeCustomMessages; use transport=peer",
				errConfig, version)
		}
		if known && !override {
			return "", "", missingOverride(version)
		}
		return transportCustomMsg, "configured", nil

	case transportAuto, "":
		if native {
			return transportPeer, fmt.Sprintf("lnd %s forwards onion "+
				"messages to holdd's peer link", version), nil
		}
		if known && !override {
			return "", "", missingOverride(version)
		}
		reason := fmt.Sprintf("lnd %s has no native onion messages; "+
			"reading type 513 through the custom-message API", version)
		if !known {
			reason += " (could not confirm protocol.custom-message=513)"
		}
		return transportCustomMsg, reason, nil
	}
	return "", "", fmt.Errorf("%w: unknown transport %q", errConfig, want)
}

func missingOverride(version rpcclient.Version) error {
	return fmt.Errorf("%w: lnd %s does not hand onion messages to holdd: "+
		"add protocol.custom-message=513 to lnd.conf", errConfig, version)
}

// customMessageOverride reports whether lnd's config lists 513 in
// protocol.custom-message, and whether the config said anything at all.
func customMessageOverride(lndConfig map[string]string) (bool, bool) {
	if lndConfig == nil {
		return false, false
	}
	for k, v := range lndConfig {
		if strings.EqualFold(lastPart(k), "custom-message") {
			for _, f := range strings.FieldsFunc(v, func(r rune) bool {
				return r < '0' || r > '9'
			}) {
				if f == "513" {
					return true, true
				}
			}
			return false, true
		}
	}
	return false, true
}

// lndSettingWarnings lists what lnd's config lacks for async payments to
// reach holdd, as lnd.conf lines to add. A nil config yields nothing: holdd
// cannot tell.
func lndSettingWarnings(transport string,
	lndConfig map[string]string) []string {

	if lndConfig == nil {
		return nil
	}
	value := func(name string) (string, bool) {
		for k, v := range lndConfig {
			if strings.EqualFold(lastPart(k), name) {
				return v, true
			}
		}
		return "", false
	}
	hasBit := func(name string) bool {
		v, _ := value(name)
		for _, f := range strings.FieldsFunc(v, func(r rune) bool {
			return r < '0' || r > '9'
		}) {
			if f == "153" {
				return true
			}
		}
		return false
	}

	var missing []string
	if !hasBit("custom-init") {
		missing = append(missing, "protocol.custom-init=153 (LDK "+
			"senders only ask for a hold from peers whose init "+
			"carries bit 153)")
	}
	if !hasBit("custom-nodeann") {
		missing = append(missing, "protocol.custom-nodeann=153")
	}
	if transport == transportPeer {
		if v, ok := value("onion-msg-relay-all"); ok && v != "true" {
			missing = append(missing, "protocol.onion-msg-relay-all "+
				"(lnd drops onion messages from peers without a "+
				"channel, so recipients without one cannot release)")
		}
	}
	return missing
}

// peerLinkReachWarning warns when lnd seems to run on another host than
// holdd while the peer link listens on loopback with no external address:
// lnd would be asked to dial an address that is its own host.
func peerLinkReachWarning(cfg *Config) string {
	if cfg.PeerLink.Listen == "" || cfg.PeerLink.ExternalAddr != "" {
		return ""
	}
	listenHost, _, err := net.SplitHostPort(cfg.PeerLink.Listen)
	if err != nil || !isLoopback(listenHost) {
		return ""
	}
	lndHost, _, err := net.SplitHostPort(cfg.Lnd.Host)
	if err != nil || isLoopback(lndHost) {
		return ""
	}
	return fmt.Sprintf("lnd (lnd.host=%s) looks remote but the peer "+
		"link listens on %s, which lnd cannot dial: set "+
		"peerlink.listen to an address lnd can reach and "+
		"peerlink.externaladdr to what lnd should dial", cfg.Lnd.Host,
		cfg.PeerLink.Listen)
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
