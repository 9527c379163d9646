// Package pgpool is a small pool of PostgreSQL connections, shared by the SQL sink and the
// PostgreSQL state store.
package pgpool

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrClosed is returned by Acquire after Close.
var ErrClosed = errors.New("pgpool: closed")

// Pool is a small pool of pgx connections. pgxpool would pull in another module for what
// Weir needs here: a bound on connections, reuse of idle ones (each keeps its prepared
// statements), and never handing out a connection that is broken or mid-transaction.
type Pool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{} // one token per connection in use

	mu     sync.Mutex
	idle   []idleConn // most recently used last
	closed bool
}

type idleConn struct {
	c     *pgx.Conn
	since time.Time
}

// pgPingAfter is how long a connection may sit idle before it is checked before use: a server
// restart or a proxy timeout would otherwise cost the next write a transient failure.
const pgPingAfter = time.Second

// New returns a pool of at most maxConns connections made with cfg.
func New(cfg *pgx.ConnConfig, maxConns int) *Pool {
	return &Pool{cfg: cfg, slots: make(chan struct{}, maxConns)}
}

// Acquire returns a connection for the caller's exclusive use until release.
func (p *Pool) Acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, ErrClosed
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		ic := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if time.Since(ic.since) < pgPingAfter {
			return ic.c, nil
		}
		if err := ic.c.Ping(ctx); err == nil {
			return ic.c, nil
		}
		closeConn(ic.c)
		if err := ctx.Err(); err != nil {
			<-p.slots
			return nil, err
		}
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return c, nil
}

// Release gives c back. A connection that broke, or that a failed call left busy or inside a
// transaction, is closed instead of reused.
func (p *Pool) Release(c *pgx.Conn) {
	defer func() { <-p.slots }()
	if c.IsClosed() || c.PgConn().IsBusy() || c.PgConn().TxStatus() != 'I' {
		closeConn(c)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeConn(c)
		return
	}
	p.idle = append(p.idle, idleConn{c: c, since: time.Now()})
	p.mu.Unlock()
}

// Close closes the idle connections; those in use are closed when released.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, ic := range idle {
		closeConn(ic.c)
	}
}

func closeConn(c *pgx.Conn) {
	// Close sends Terminate; bound it so that a dead server cannot hold up the caller.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx) //nolint:errcheck // the connection is dropped either way
}
