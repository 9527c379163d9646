// Package natsjs is the buffer on NATS JetStream, for running Weir on a NATS cluster that a team
// already trusts instead of the embedded log.
//
// Each partition of a topic is one stream (file storage, replicated) with one subject,
// "<prefix>.<topic>.<partition>", so that a record's offset is its stream sequence: contiguous
// within the partition, as the buffer contract wants (a gap is a lost record) — one stream per
// topic would share one sequence between the partitions. A consumer group's committed offsets
// live in a replicated key-value bucket, one key per group, topic and partition; a consumer reads
// each partition with an ordered consumer starting at the committed offset, so a restarted stage
// starts exactly after what it committed — nothing waits for an ack timeout.
//
// An Append returns once the stream acknowledged every message (stored by a quorum with
// replicas > 1). NATS fsyncs its file store every two minutes by default: Open warns when the
// topics are not replicated, since then an acknowledged message can be lost with one machine's
// power (run the server with sync_interval: always, or replicas: 3).
package natsjs

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/buffer"
)

// Config configures the NATS JetStream buffer.
type Config struct {
	// URL is the NATS server URL list (nats://host:4222, comma-separated for several).
	URL string
	// Replicas is the number of copies of each stream (default: 3 when the cluster has at least
	// three servers, else 1).
	Replicas int
	// Prefix starts every stream, subject and bucket name (default "weir").
	Prefix string
	// Timeout bounds one request to the server (default 10s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Options are extra nats.go connection options (credentials, TLS).
	Options []nats.Option
	// Exclusive makes Open claim the topics for this process: a second Weir on the same server
	// and prefix waits in Open (a standby) while the first lives, since it would consume every
	// partition too. The claim is a key with a time to live, renewed three times per TTL; a
	// process that dies frees it within OwnerTTL, so a restart after a crash waits that long at
	// most. Open gives up with ErrClaimed when its ctx ends first.
	Exclusive bool
	OwnerTTL  time.Duration // default 6s
}

// Buffer is the JetStream buffer. It implements buffer.Buffer.
type Buffer struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	offsets jetstream.KeyValue

	mu     sync.Mutex
	topics map[string]int // partitions of the topics ensured
	closed bool

	owner     jetstream.KeyValue // the claim (Exclusive)
	ownerErr  atomic.Pointer[error]
	stopClaim chan struct{}
	claimDone chan struct{}
}

const headerKey = "Weir-Key"

// Open connects to the server and prepares the offsets bucket.
func Open(ctx context.Context, cfg Config) (*Buffer, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "weir"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := append([]nats.Option{nats.Name("weir"), nats.MaxReconnects(-1), nats.Timeout(cfg.Timeout)}, cfg.Options...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsjs: connect %s: %w", redact(cfg.URL), errors.Join(err, buffer.ErrUnavailable))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsjs: %w", err)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
		if len(nc.Servers()) >= 3 {
			cfg.Replicas = 3
		}
	}
	b := &Buffer{cfg: cfg, nc: nc, js: js, topics: map[string]int{}}
	octx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	b.offsets, err = js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{Bucket: cfg.Prefix + "_offsets",
		Description: "Weir consumer group offsets", Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsjs: offsets bucket: %w", err)
	}
	if cfg.Exclusive {
		if err := b.claim(ctx); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if cfg.Replicas < 3 {
		cfg.Logger.Warn("NATS JetStream topics have fewer than 3 replicas: an acknowledged message lives on one server, "+
			"which fsyncs every 2 minutes unless it runs with sync_interval: always — a power loss can lose it",
			"replicas", cfg.Replicas)
	}
	return b, nil
}

// ErrClaimed refuses a second process on topics another one consumes.
var ErrClaimed = errors.New("natsjs: another weir instance is consuming these topics")

const ownerKey = "instance"

// claim takes the owner key, or fails with ErrClaimed, and renews it until Close.
func (b *Buffer) claim(ctx context.Context) error {
	ttl := b.cfg.OwnerTTL
	if ttl <= 0 {
		ttl = 6 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	kv, err := b.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: b.cfg.Prefix + "_owner",
		Description: "the Weir instance consuming these topics", Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas, TTL: ttl})
	cancel()
	if err != nil {
		return fmt.Errorf("natsjs: owner bucket: %w", err)
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s pid %d since %s", host, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	var rev uint64
	var logged time.Time
	for {
		cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		rev, err = kv.Create(cctx, ownerKey, []byte(id))
		holder := ""
		if errors.Is(err, jetstream.ErrKeyExists) {
			if e, gerr := kv.Get(cctx, ownerKey); gerr == nil {
				holder = string(e.Value())
			}
		}
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("natsjs: claiming the topics: %w", err)
		}
		if time.Since(logged) >= ttl {
			logged = time.Now()
			b.cfg.Logger.Warn("another weir instance consumes these NATS topics: waiting for its claim (it expires within the TTL once that instance is gone)",
				"holder", holder, "ttl", ttl)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%s)", ErrClaimed, holder)
		case <-time.After(ttl / 6):
		}
	}
	b.owner, b.stopClaim, b.claimDone = kv, make(chan struct{}), make(chan struct{})
	go b.renew(id, rev, ttl)
	return nil
}

// renew keeps the claim alive; losing it (a pause longer than the TTL let another take it) is
// reported by Err.
func (b *Buffer) renew(id string, rev uint64, ttl time.Duration) {
	defer close(b.claimDone)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-b.stopClaim:
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
			b.owner.Delete(ctx, ownerKey, jetstream.LastRevision(rev))
			cancel()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
		r, err := b.owner.Update(ctx, ownerKey, []byte(id), rev)
		cancel()
		if err == nil {
			rev = r
			continue
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) {
			lost := fmt.Errorf("natsjs: lost the claim on the topics (another instance took it): %w", ErrClaimed)
			b.ownerErr.Store(&lost)
			return
		}
		b.cfg.Logger.Warn("renewing the claim on the NATS topics", "err", err) // retried next tick
	}
}

// Err reports a lost claim: this process must stop consuming.
func (b *Buffer) Err() error {
	if p := b.ownerErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Replicas is the number of copies of each stream.
func (b *Buffer) Replicas() int { return b.cfg.Replicas }

// sanitize makes a topic or group name usable in stream names, subjects and keys.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func (b *Buffer) stream(topic string, p int) string {
	return b.cfg.Prefix + "_" + sanitize(topic) + "_" + strconv.Itoa(p)
}

func (b *Buffer) subject(topic string, p int) string {
	return b.cfg.Prefix + "." + sanitize(topic) + "." + strconv.Itoa(p)
}

func (b *Buffer) check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return buffer.ErrClosed
	}
	return nil
}

// EnsureTopic creates the streams of the topic's partitions, or checks that the topic has the
// same number of partitions.
func (b *Buffer) EnsureTopic(ctx context.Context, t buffer.TopicConfig) error {
	if err := b.check(); err != nil {
		return err
	}
	if t.Partitions < 1 {
		return fmt.Errorf("natsjs: topic %q: partitions must be at least 1", t.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	for p := range t.Partitions {
		if err := b.ensureStream(ctx, t, p); err != nil {
			return err
		}
	}
	b.mu.Lock()
	b.topics[t.Name] = t.Partitions
	b.mu.Unlock()
	return nil
}

func (b *Buffer) ensureStream(ctx context.Context, t buffer.TopicConfig, p int) error {
	name := b.stream(t.Name, p)
	for {
		s, err := b.js.Stream(ctx, name)
		if err == nil {
			// Metadata needs a 2.10 server; the description carries it for older ones.
			cfg := s.CachedInfo().Config
			got := cfg.Metadata["weir_partitions"]
			if _, after, ok := strings.Cut(cfg.Description, "weir_partitions="); ok && got == "" {
				got = after
			}
			if got != strconv.Itoa(t.Partitions) {
				return fmt.Errorf("natsjs: topic %q has %s partitions, not %d", t.Name, got, t.Partitions)
			}
			return waitLeader(ctx, s)
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("natsjs: topic %q: %w", t.Name, err)
		}
		_, err = b.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Description: fmt.Sprintf("Weir topic %s, partition %d; weir_partitions=%d", t.Name, p, t.Partitions),
			Subjects: []string{b.subject(t.Name, p)}, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas,
			Retention: jetstream.LimitsPolicy, Duplicates: 2 * time.Minute,
			Metadata: map[string]string{"weir_topic": t.Name, "weir_partitions": strconv.Itoa(t.Partitions)}})
		if err == nil {
			continue // look it up again, and wait for its leader
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("natsjs: create topic %q: %w", t.Name, err)
		}
		// Another instance created it meanwhile: check it.
	}
}

// waitLeader returns once a replicated stream has elected its leader: until then publishes find
// no responders.
func waitLeader(ctx context.Context, s jetstream.Stream) error {
	for {
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("natsjs: stream %s: %w", s.CachedInfo().Config.Name, err)
		}
		if info.Cluster == nil || info.Cluster.Leader != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsjs: stream %s has no leader: %w", info.Config.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *Buffer) partitions(topic string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, buffer.ErrClosed
	}
	n, ok := b.topics[topic]
	if !ok {
		return 0, fmt.Errorf("natsjs: unknown topic %q (EnsureTopic first)", topic)
	}
	return n, nil
}

// Append publishes msgs and waits until the stream acknowledged every one. Each message carries
// a fresh Nats-Msg-Id, so a publish that the client library retries is stored once.
func (b *Buffer) Append(ctx context.Context, topic string, msgs []buffer.Message) error {
	n, err := b.partitions(topic)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var id [16]byte
	for _, m := range msgs {
		msg := nats.NewMsg(b.subject(topic, buffer.Partition(m.Key, n)))
		msg.Data = m.Value
		msg.Header.Set(headerKey, string(m.Key))
		rand.Read(id[:])
		msg.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(id[:]))
		// No silent retry: a publish the client retried (no responders while a stream elects its
		// leader) can be stored after later ones of the same call, out of key order. A failure
		// fails the append instead (503 to the partner, who sends again).
		f, err := b.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0))
		if err != nil {
			return fmt.Errorf("natsjs: append to %s: %w", topic, errors.Join(err, buffer.ErrUnavailable))
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(b.cfg.Timeout)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("natsjs: append to %s: %w", topic, errors.Join(err, buffer.ErrUnavailable))
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("natsjs: append to %s: no acknowledgement within %s: %w", topic, b.cfg.Timeout, buffer.ErrUnavailable)
		}
	}
	return nil
}

func (b *Buffer) offsetKey(group, topic string, p int) string {
	return sanitize(group) + "." + sanitize(topic) + "." + strconv.Itoa(p)
}

// committed returns the committed next offset of a group's partition (0: none). It asks the
// bucket's stream leader: the bucket's Get is a direct get, which any replica answers, and a
// follower that lags would hand a consumer opened on another instance (a partition whose lease
// moved) an offset from before the last commits.
func (b *Buffer) committed(ctx context.Context, group, topic string, p int) (uint64, error) {
	bucket := b.offsets.Bucket()
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + b.offsetKey(group, topic, p)})
	if err != nil {
		return 0, err
	}
	m, err := b.nc.RequestWithContext(ctx, jetstream.DefaultAPIPrefix+"STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, fmt.Errorf("natsjs: offset %s: %w", b.offsetKey(group, topic, p), err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, resp.Error
	case resp.Message == nil:
		return 0, fmt.Errorf("natsjs: offset %s: empty answer", b.offsetKey(group, topic, p))
	case len(resp.Message.Data) == 0:
		// A delete or purge marker: an operator reset the offset, as Get would report.
		return 0, nil
	case len(resp.Message.Data) != 8:
		return 0, fmt.Errorf("natsjs: offset %s is corrupt", b.offsetKey(group, topic, p))
	}
	return binary.BigEndian.Uint64(resp.Message.Data), nil
}

// Consume reads every partition of topic from the group's committed offsets.
func (b *Buffer) Consume(ctx context.Context, topic, group string) (buffer.Consumer, error) {
	n, err := b.partitions(topic)
	if err != nil {
		return nil, err
	}
	all := make([]int, n)
	for p := range all {
		all[p] = p
	}
	return b.consume(ctx, topic, group, all)
}

// ConsumePartitions reads some partitions of topic from the group's committed offsets. Several
// instances can split a topic's partitions this way (without Exclusive, which lets one instance
// alone consume): each partition is its own stream and each committed offset its own key, so
// consumers of disjoint partitions never read or write anything of each other's.
func (b *Buffer) ConsumePartitions(ctx context.Context, topic, group string, partitions []int) (buffer.Consumer, error) {
	n, err := b.partitions(topic)
	if err != nil {
		return nil, err
	}
	if err := buffer.CheckPartitions(partitions, n); err != nil {
		return nil, fmt.Errorf("natsjs: consume %s: %w", topic, err)
	}
	return b.consume(ctx, topic, group, slices.Clone(partitions))
}

// consume reads partitions, valid and distinct partitions of topic.
func (b *Buffer) consume(ctx context.Context, topic, group string, partitions []int) (buffer.Consumer, error) {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &consumer{b: b, topic: topic, group: group, partitions: partitions, recs: make(chan buffer.Record, 1024),
		cancel: cancel, done: make(chan struct{})}
	var iters []jetstream.MessagesContext
	fail := func(err error) (buffer.Consumer, error) {
		cancel()
		for _, it := range iters {
			it.Stop()
		}
		return nil, err
	}
	rctx, rcancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer rcancel()
	for _, p := range partitions {
		next, err := b.committed(rctx, group, topic, p)
		if err != nil {
			return fail(fmt.Errorf("natsjs: offsets of %s/%s: %w", group, topic, err))
		}
		oc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{b.subject(topic, p)}, DeliverPolicy: jetstream.DeliverAllPolicy}
		if next > 0 {
			oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, next
		}
		cons, err := b.js.OrderedConsumer(rctx, b.stream(topic, p), oc)
		if err != nil {
			return fail(fmt.Errorf("natsjs: consume %s: %w", topic, err))
		}
		it, err := cons.Messages()
		if err != nil {
			return fail(fmt.Errorf("natsjs: consume %s: %w", topic, err))
		}
		iters = append(iters, it)
	}
	c.wg.Add(len(iters))
	for i, it := range iters {
		go c.read(cctx, partitions[i], it)
	}
	go func() {
		c.wg.Wait()
		close(c.done)
	}()
	return c, nil
}

// Lag returns, per partition, the stored records the group has not committed.
func (b *Buffer) Lag(ctx context.Context, topic, group string) ([]int64, error) {
	n, err := b.partitions(topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	out := make([]int64, n)
	for p := range n {
		s, err := b.js.Stream(ctx, b.stream(topic, p))
		if err != nil {
			return nil, fmt.Errorf("natsjs: lag of %s: %w", topic, err)
		}
		next, err := b.committed(ctx, group, topic, p)
		if err != nil {
			return nil, fmt.Errorf("natsjs: lag of %s: %w", topic, err)
		}
		last := s.CachedInfo().State.LastSeq // sequences start at 1: next = last+1 when caught up
		if next == 0 {
			next = 1
		}
		if last+1 > next {
			out[p] = int64(last + 1 - next)
		}
	}
	return out, nil
}

// Close closes the connection; pending Appends fail.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	if b.stopClaim != nil {
		close(b.stopClaim)
		<-b.claimDone
	}
	b.nc.Close()
	return nil
}

type consumer struct {
	b            *Buffer
	topic, group string
	partitions   []int // the partitions read
	recs         chan buffer.Record
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	done         chan struct{} // closed when every reader stopped

	mu     sync.Mutex
	err    error
	closed bool
}

// read moves one partition's messages to the consumer's channel.
func (c *consumer) read(ctx context.Context, p int, it jetstream.MessagesContext) {
	defer c.wg.Done()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				c.mu.Lock()
				c.err = fmt.Errorf("natsjs: reading %s partition %d: %w", c.topic, p, err)
				c.mu.Unlock()
				c.cancel()
			}
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		rec := buffer.Record{Topic: c.topic, Partition: p, Offset: meta.Sequence.Stream,
			Key: []byte(m.Headers().Get(headerKey)), Value: m.Data()}
		select {
		case c.recs <- rec:
		case <-ctx.Done():
			return
		}
	}
}

// Fetch waits for at least one record and returns up to max.
func (c *consumer) Fetch(ctx context.Context, max int) ([]buffer.Record, error) {
	// Records already read stay buffered after a Close: a closed consumer or buffer returns
	// ErrClosed however the select below would pick.
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if err := c.b.check(); closed || err != nil {
		return nil, buffer.ErrClosed
	}
	var out []buffer.Record
	select {
	case r := <-c.recs:
		out = append(out, r)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.stopErr()
	}
	for len(out) < max {
		select {
		case r := <-c.recs:
			out = append(out, r)
		default:
			return out, nil
		}
	}
	return out, nil
}

func (c *consumer) stopErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return buffer.ErrClosed
}

// Commit stores next as the group's offset of partition.
func (c *consumer) Commit(ctx context.Context, partition int, next uint64) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return buffer.ErrClosed
	}
	if !slices.Contains(c.partitions, partition) {
		// Another consumer of the group may own it: a commit here would move its offset.
		return fmt.Errorf("natsjs: commit %s/%s: partition %d is not one of this consumer's %v", c.group, c.topic, partition, c.partitions)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], next)
	ctx, cancel := context.WithTimeout(ctx, c.b.cfg.Timeout)
	defer cancel()
	if _, err := c.b.offsets.Put(ctx, c.b.offsetKey(c.group, c.topic, partition), v[:]); err != nil {
		return fmt.Errorf("natsjs: commit %s/%s/%d: %w", c.group, c.topic, partition, err)
	}
	return nil
}

// Close stops the readers; a Fetch in progress returns ErrClosed.
func (c *consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	<-c.done
	return nil
}

func redact(url string) string {
	if i := strings.Index(url, "@"); i >= 0 {
		if j := strings.Index(url, "://"); j >= 0 && j < i {
			return url[:j+3] + "…" + url[i:]
		}
	}
	return url
}

var (
	_ buffer.Buffer            = (*Buffer)(nil)
	_ buffer.Lagger            = (*Buffer)(nil)
	_ buffer.PartitionConsumer = (*Buffer)(nil)
)
