// Package tcpproxy is a TCP proxy for tests that can black-hole its
// connections: stop forwarding in both directions without closing
// anything, as a dead network path, a NAT that lost its state or a
// vanished host does. Only tests use it.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy forwards connections from its address to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu         sync.Mutex
	blackholed bool
	closed     bool
	conns      map[*pair]struct{}

	wg sync.WaitGroup
}

// pair is one proxied connection. spoiled is set once bytes were dropped
// on it: it can never carry a valid stream again.
type pair struct {
	client, server net.Conn
	spoiled        bool
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[*pair]struct{})}
	p.wg.Add(1)
	go p.accept()

	return p, nil
}

// Addr is the address to connect to instead of the target.
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// Blackhole stops forwarding: bytes in either direction are read and
// dropped, nothing is closed, and new connections are accepted and then
// treated the same.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.blackholed = true
	for c := range p.conns {
		c.spoiled = true
	}
}

// Heal forwards again. Connections that lost bytes are closed (a
// middlebox that lost their state resets them); new ones work.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.blackholed = false
	for c := range p.conns {
		if c.spoiled {
			c.close()
			delete(p.conns, c)
		}
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.close()
	}
	p.conns = nil
	p.mu.Unlock()

	_ = p.ln.Close()
	p.wg.Wait()
}

func (c *pair) close() {
	_ = c.client.Close()
	if c.server != nil {
		_ = c.server.Close()
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve dials the target (unless black-holed: a dead path reaches
// nothing) and copies both ways.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()

	c := &pair{client: client}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		return
	}
	c.spoiled = p.blackholed
	p.conns[c] = struct{}{}
	p.mu.Unlock()

	if c.spoiled {
		// Swallow whatever the client sends until Heal or Close.
		p.copy(c, io.Discard, client)
		return
	}

	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	c.server = server
	if p.closed || c.spoiled && !p.blackholed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		p.copy(c, client, server)
	}()
	p.copy(c, server, client)
	<-done
	p.drop(c)
}

// copy moves bytes from src to dst, dropping them while the proxy is
// black-holed, until src fails; then it closes the pair.
func (p *Proxy) copy(c *pair, dst io.Writer, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.blackholed || c.spoiled
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					p.drop(c)
					return
				}
			}
		}
		if err != nil {
			// A dead path carries no close either: the other side
			// learns nothing until Heal resets the connection.
			p.mu.Lock()
			quiet := p.blackholed || c.spoiled
			p.mu.Unlock()
			if quiet {
				_ = src.Close()
				return
			}
			if !errors.Is(err, net.ErrClosed) {
				p.drop(c)
			}
			return
		}
	}
}

func (p *Proxy) drop(c *pair) {
	p.mu.Lock()
	defer p.mu.Unlock()

	c.close()
	if p.conns != nil {
		delete(p.conns, c)
	}
}
