package state

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/pgpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Postgres is the state store's space in PostgreSQL, shared by every instance that points at
// the same database: receipts, trails, retries, dead letters, holds, endpoint pauses and
// workflow runs, in one table keyed like the embedded store; and the leases that share out the
// work. Every write is a committed transaction (synchronous_commit as the server has it), for
// the reason External gives: the stage commits it backs go to the broker, which does not wait
// for PostgreSQL's WAL.
type Postgres struct {
	pool   *pgpool.Pool
	buffer buffer.Buffer
}

// pgScanPage bounds the rows one round trip of a Scan reads.
const pgScanPage = 512

// pgMigrationLock is the advisory lock id that serializes migrations between instances
// starting at once.
const pgMigrationLock int64 = 0x5765697253746174 // "WeirStat"

// OpenPostgres connects to the database at url, brings its schema up to date and returns the
// space; appends go to buf.
func OpenPostgres(ctx context.Context, url string, buf buffer.Buffer) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("state: postgres url: %w", err)
	}
	if err := migrate(ctx, cfg); err != nil {
		return nil, err
	}
	return &Postgres{pool: pgpool.New(cfg, 8), buffer: buf}, nil
}

func migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(pgMigrationLock))
	if err != nil {
		return err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithTableName("weir_state_migrations"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("state: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("state: migrating the PostgreSQL schema: %w", err)
	}
	return nil
}

// Close releases the connections.
func (p *Postgres) Close() { p.pool.Close() }

// Shared: other instances write the same tables.
func (p *Postgres) Shared() bool { return true }

func (p *Postgres) do(ctx context.Context, fn func(c *pgx.Conn) error) error {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("state: postgres: %w", err)
	}
	defer p.pool.Release(c)
	if err := fn(c); err != nil {
		if errors.Is(err, ErrFenced) {
			return err
		}
		return fmt.Errorf("state: postgres: %w", err)
	}
	return nil
}

// Get reads one key.
func (p *Postgres) Get(key []byte) (v []byte, ok bool, err error) {
	err = p.do(context.Background(), func(c *pgx.Conn) error {
		err := c.QueryRow(context.Background(), `SELECT v FROM weir_state WHERE k = $1`, key).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return v, ok, err
}

// Scan reads the range a page at a time; fn runs between pages, with no connection held, so it
// may read the store itself.
func (p *Postgres) Scan(lower, upper []byte, fn func(key, value []byte) error) error {
	type row struct{ k, v []byte }
	page := make([]row, 0, pgScanPage)
	for {
		page = page[:0]
		err := p.do(context.Background(), func(c *pgx.Conn) error {
			rows, err := c.Query(context.Background(),
				`SELECT k, v FROM weir_state WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3`, lower, upper, pgScanPage)
			if err != nil {
				return err
			}
			var r row
			_, err = pgx.ForEachRow(rows, []any{&r.k, &r.v}, func() error {
				page = append(page, r)
				return nil
			})
			return err
		})
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r.k, r.v); errors.Is(err, errStop) {
				return nil
			} else if err != nil {
				return err
			}
		}
		if len(page) < pgScanPage {
			return nil
		}
		lower = append(page[len(page)-1].k, 0)
	}
}

// Write applies w in one transaction; with a fence, the transaction first checks (and holds
// for its duration) the lease, so a takeover waits for it or it sees the takeover.
func (p *Postgres) Write(ctx context.Context, w Batch) error {
	if len(w.Ops) == 0 {
		return nil
	}
	return p.do(context.WithoutCancel(ctx), func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if f := w.Fence; f != nil {
				var token int64
				err := tx.QueryRow(ctx, `SELECT token FROM weir_leases WHERE name = $1 AND holder = $2 FOR SHARE`, f.Name, f.Holder).Scan(&token)
				if errors.Is(err, pgx.ErrNoRows) || (err == nil && token != f.Token) {
					return fmt.Errorf("%w: %s", ErrFenced, f.Name)
				}
				if err != nil {
					return err
				}
			}
			b := &pgx.Batch{}
			for _, op := range w.Ops {
				switch {
				case op.Delete && op.End != nil:
					b.Queue(`DELETE FROM weir_state WHERE k >= $1 AND k < $2`, op.Key, op.End)
				case op.Delete:
					b.Queue(`DELETE FROM weir_state WHERE k = $1`, op.Key)
				default:
					v := op.Value
					if v == nil {
						v = []byte{}
					}
					b.Queue(`INSERT INTO weir_state (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, op.Key, v)
				}
			}
			return tx.SendBatch(ctx, b).Close()
		})
	})
}

// AppendWith appends to the buffer, then writes w (see External for why in that order).
func (p *Postgres) AppendWith(ctx context.Context, topic string, msgs []buffer.Message, w Batch) error {
	if w.Fence != nil {
		// Narrow the window in which a holder that lost its lease appends stale work: the
		// write below is fenced for good, the append cannot be.
		if err := p.checkFence(ctx, w.Fence); err != nil {
			return err
		}
	}
	return appendThenWrite(ctx, p.buffer, topic, msgs, w, p.Write)
}

func (p *Postgres) checkFence(ctx context.Context, f *Lease) error {
	return p.do(ctx, func(c *pgx.Conn) error {
		var token int64
		err := c.QueryRow(ctx, `SELECT token FROM weir_leases WHERE name = $1 AND holder = $2 AND expires_at > now()`, f.Name, f.Holder).Scan(&token)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && token != f.Token) {
			return fmt.Errorf("%w: %s", ErrFenced, f.Name)
		}
		return err
	})
}

// Acquire takes the lease when it is free, expired, or already the holder's; the token grows
// whenever the lease did not run on unbroken in the holder's hands. Expiry is the database's
// clock, so instances' clocks need not agree; the returned Expires is the local time by which
// the holder must stop (the TTL counted from before the request was sent).
func (p *Postgres) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (Lease, bool, error) {
	l := Lease{Name: name, Holder: holder, Expires: time.Now().Add(ttl)}
	ok := false
	err := p.do(ctx, func(c *pgx.Conn) error {
		err := c.QueryRow(ctx, `
INSERT INTO weir_leases AS l (name, holder, token, expires_at)
VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder,
    token = CASE WHEN l.holder = excluded.holder AND l.expires_at > now() THEN l.token ELSE l.token + 1 END,
    expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= now()
RETURNING token`, name, holder, ttl.Milliseconds()).Scan(&l.Token)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return l, ok, err
}

// Release gives the lease up at once. The row stays (expired), so its token keeps growing.
func (p *Postgres) Release(ctx context.Context, name, holder string) error {
	return p.do(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `UPDATE weir_leases SET expires_at = now() WHERE name = $1 AND holder = $2`, name, holder)
		return err
	})
}

// Held lists the running leases under prefix.
func (p *Postgres) Held(ctx context.Context, prefix string) ([]Lease, error) {
	var out []Lease
	err := p.do(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT name, holder, token, expires_at FROM weir_leases
WHERE starts_with(name, $1) AND expires_at > now() ORDER BY name`, prefix)
		if err != nil {
			return err
		}
		var l Lease
		_, err = pgx.ForEachRow(rows, []any{&l.Name, &l.Holder, &l.Token, &l.Expires}, func() error {
			out = append(out, l)
			return nil
		})
		return err
	})
	return out, err
}

var (
	_ Space  = (*Postgres)(nil)
	_ Leases = (*Postgres)(nil)
)
