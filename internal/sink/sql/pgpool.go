package sqlsink

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgPool is a small pool of pgx connections. pgxpool would pull in another module for what
// the sink needs here: a bound on connections, reuse of idle ones (each keeps its prepared
// statements), and never handing out a connection that is broken or mid-transaction.
type pgPool struct {
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

func newPGPool(cfg *pgx.ConnConfig, maxConns int) *pgPool {
	return &pgPool{cfg: cfg, slots: make(chan struct{}, maxConns)}
}

// acquire returns a connection for the caller's exclusive use until release.
func (p *pgPool) acquire(ctx context.Context) (*pgx.Conn, error) {
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

// release gives c back. A connection that broke, or that a failed call left busy or inside a
// transaction, is closed instead of reused.
func (p *pgPool) release(c *pgx.Conn) {
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

// close closes the idle connections; those in use are closed when released.
func (p *pgPool) close() {
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
