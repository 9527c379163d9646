// Package kafka is the buffer on Apache Kafka (or a Kafka-compatible service such as Azure Event
// Hubs or Redpanda), for running Weir where a team already operates a Kafka cluster.
//
// A Weir topic is a Kafka topic with the same name and partition count; a record's offset is its
// Kafka offset, which is contiguous within a partition as the buffer contract wants, because Weir
// never writes transactions (whose control records take offsets) and never creates compacted
// topics. Appends go to an explicit partition, buffer.Partition(key, n), never Kafka's own
// partitioner, so a key lands in the same partition on every backend.
//
// The producer is idempotent and waits for acks=all: an Append returns once every in-sync replica
// has every record. Topics created with three or more replicas also get min.insync.replicas=2, so
// "all in-sync replicas" can never shrink to the leader alone.
//
// A consumer group's committed offsets live in Kafka's own group offset storage, but a consumer
// never joins the group: it assigns itself its partitions (every one, or those ConsumePartitions
// names), starting at the committed offsets, and commits as a "simple" group member (generation
// -1), one partition per request. Kafka stores a commit per partition and leaves the partitions a
// request does not name alone, so instances that split a topic's partitions (each holding the
// leases of some) commit the same group without overwriting each other's offsets.
//
// Kafka deletes records by time or size (retention.ms, retention.bytes), not by what the groups
// declared in TopicConfig.Groups have committed: the cluster's retention must outlast the longest
// time a stage can fall behind, or records are deleted unread.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirhq/weir/internal/buffer"
)

// Config configures the Kafka buffer.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Opts are extra franz-go client options, applied after Weir's own: SASL and TLS (Azure Event
	// Hubs needs both), client ID, and so on. They apply to the producer and to every consumer.
	Opts []kgo.Opt
	// Replication is the replication factor of the topics Weir creates (default: 3 when the
	// cluster has at least three brokers, else 1).
	Replication int
	// Timeout bounds one Append, one commit and one administrative call (default 10s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Buffer is the Kafka buffer. It implements buffer.Buffer.
type Buffer struct {
	cfg Config
	cl  *kgo.Client  // producer, and the client under adm
	adm *kadm.Client // topics and group offsets

	mu        sync.Mutex
	topics    map[string]int // partition counts of the topics seen
	consumers map[*consumer]struct{}
	closed    bool
}

// Open connects to the cluster and learns its size.
func Open(ctx context.Context, cfg Config) (*Buffer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if cfg.Replication > math.MaxInt16 {
		return nil, fmt.Errorf("kafka: replication %d", cfg.Replication)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Brokers = append([]string(nil), cfg.Brokers...)
	cfg.Opts = append([]kgo.Opt(nil), cfg.Opts...)
	b := &Buffer{cfg: cfg, topics: map[string]int{}, consumers: map[*consumer]struct{}{}}
	opts := append(b.clientOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Appends are synchronous: records that arrive while a request is in flight are batched
		// anyway, so waiting for more only adds latency to every Append.
		kgo.ProducerLinger(0),
		// Uncompressed: Azure Event Hubs' Kafka endpoint does not take compressed batches, and
		// Weir's records are small JSON envelopes whose batches compress little.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	cl, err := kgo.NewClient(append(opts, cfg.Opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	b.cl, b.adm = cl, kadm.NewClient(cl)
	mctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	meta, err := b.adm.BrokerMetadata(mctx)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: connect to %v: %w", cfg.Brokers, errors.Join(err, buffer.ErrUnavailable))
	}
	if b.cfg.Replication <= 0 {
		b.cfg.Replication = 1
		if len(meta.Brokers) >= 3 {
			b.cfg.Replication = 3
		}
	}
	if b.cfg.Replication < 3 {
		cfg.Logger.Warn("Kafka topics have fewer than 3 replicas: an acknowledged message can be lost with one broker",
			"replication", b.cfg.Replication, "brokers", len(meta.Brokers))
	}
	return b, nil
}

// clientOpts are the options every client of the buffer starts with; Config.Opts follow them.
func (b *Buffer) clientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(b.cfg.Brokers...),
		kgo.ClientID("weir"),
		kgo.WithLogger(logger{b.cfg.Logger}),
	}
}

func (b *Buffer) check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return buffer.ErrClosed
	}
	return nil
}

// EnsureTopic creates the topic, or checks that the existing topic has the same number of
// partitions. It looks before it creates, so that a principal allowed to use a topic but not to
// create topics (usual on managed clusters) can run Weir on topics an operator created.
func (b *Buffer) EnsureTopic(ctx context.Context, t buffer.TopicConfig) error {
	if err := b.check(); err != nil {
		return err
	}
	if t.Partitions < 1 || t.Partitions > math.MaxInt32 {
		return fmt.Errorf("kafka: topic %q: %d partitions", t.Name, t.Partitions)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	configs := map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}
	if b.cfg.Replication >= 3 {
		configs["min.insync.replicas"] = kadm.StringPtr("2")
	}
	created := false // by this call or, meanwhile, by another instance
	for wait := time.Duration(0); ; wait = min(2*wait+10*time.Millisecond, 500*time.Millisecond) {
		n, err := b.lookup(ctx, t.Name)
		if err == nil {
			if n != t.Partitions {
				return fmt.Errorf("kafka: topic %q has %d partitions, not %d", t.Name, n, t.Partitions)
			}
			return nil
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return err
		}
		if !created {
			_, err = b.adm.CreateTopic(ctx, int32(t.Partitions), int16(b.cfg.Replication), configs, t.Name)
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("kafka: create topic %q: %w", t.Name, err)
			}
			created = true
			continue
		}
		// The topic exists but its metadata has not reached the broker we asked yet. Waiting
		// for it also replaces the "unknown topic" that the client's metadata cache holds since
		// the first lookup (see lookup).
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: topic %q was created but has no metadata: %w", t.Name, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// lookup asks the cluster for the partition count of topic and remembers it. It fails with
// kerr.UnknownTopicOrPartition when the topic does not exist.
//
// It sends a metadata request of its own, which also refreshes the client's metadata cache: kadm
// answers from that cache (kgo.Client.RequestCachedMetadata), which keeps an "unknown topic" for
// MetadataMinAge (5s), so after a lookup, a create and a kadm call, the topic would seem missing
// for five seconds.
func (b *Buffer) lookup(ctx context.Context, topic string) (int, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, b.cl)
	if err != nil {
		return 0, fmt.Errorf("kafka: topic %q: %w", topic, errors.Join(err, buffer.ErrUnavailable))
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return 0, fmt.Errorf("kafka: topic %q: %w", topic, err)
		}
		b.remember(topic, len(t.Partitions))
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("kafka: topic %q: %w", topic, kerr.UnknownTopicOrPartition)
}

func (b *Buffer) remember(topic string, n int) {
	b.mu.Lock()
	b.topics[topic] = n
	b.mu.Unlock()
}

// partitions returns the partition count of topic: from memory, or asked of the cluster once.
// Partition counts are fixed (EnsureTopic refuses another), so a count once seen stays true.
func (b *Buffer) partitions(ctx context.Context, topic string) (int, error) {
	b.mu.Lock()
	closed := b.closed
	n, ok := b.topics[topic]
	b.mu.Unlock()
	if closed {
		return 0, buffer.ErrClosed
	}
	if ok {
		return n, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	n, err := b.lookup(ctx, topic)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return 0, fmt.Errorf("kafka: unknown topic %q (EnsureTopic first)", topic)
	}
	return n, err
}

// Append produces msgs, each to its key's partition, and waits until every one is acknowledged
// by all in-sync replicas. If the wait ends first (ctx, Timeout), records still buffered are
// failed; records already sent may yet be written, as with any unacknowledged Append.
func (b *Buffer) Append(ctx context.Context, topic string, msgs []buffer.Message) error {
	n, err := b.partitions(ctx, topic)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	done := make(chan error, len(msgs)) // every promise runs, even after we stopped waiting
	for _, m := range msgs {
		r := &kgo.Record{Topic: topic, Partition: int32(buffer.Partition(m.Key, n)), Key: m.Key, Value: m.Value}
		b.cl.Produce(actx, r, func(_ *kgo.Record, err error) { done <- err })
	}
	for range msgs {
		var err error
		select {
		case err = <-done:
		case <-actx.Done():
			err = actx.Err()
		}
		if err != nil {
			return b.appendError(ctx, topic, err)
		}
	}
	return nil
}

// appendError classifies a failed Append: the caller's own context, the buffer closed, a record
// Kafka can never take, or (everything else) the cluster unavailable for now.
func (b *Buffer) appendError(ctx context.Context, topic string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("kafka: append to %s: %w", topic, ctx.Err())
	case errors.Is(err, kgo.ErrClientClosed) || b.check() != nil:
		return fmt.Errorf("kafka: append to %s: %w", topic, buffer.ErrClosed)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("kafka: append to %s: no acknowledgement within %s: %w", topic, b.cfg.Timeout, buffer.ErrUnavailable)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage):
		return fmt.Errorf("kafka: append to %s: %w", topic, err)
	default:
		return fmt.Errorf("kafka: append to %s: %w", topic, errors.Join(err, buffer.ErrUnavailable))
	}
}

// committed returns the group's committed next offset of each partition of topic that has one.
func (b *Buffer) committed(ctx context.Context, topic, group string) (map[int32]int64, error) {
	resps, err := b.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// A group that never committed: Kafka answers with no offsets, kfake with this error.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64)
	for p, r := range resps[topic] {
		if r.Err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, r.Err)
		}
		if r.At >= 0 {
			out[p] = r.At
		}
	}
	return out, nil
}

// Consume reads every partition of topic, each from the group's committed offset or, when the
// group has none, from the start. The consumer does not join the group (see the package
// comment): two consumers of one group read the same records.
func (b *Buffer) Consume(ctx context.Context, topic, group string) (buffer.Consumer, error) {
	n, err := b.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	all := make([]int, n)
	for p := range all {
		all[p] = p
	}
	return b.consume(ctx, topic, group, n, all)
}

// ConsumePartitions is Consume restricted to partitions. Which instance reads which partitions
// is the caller's to decide (leases), not the group's: the consumer still does not join it.
func (b *Buffer) ConsumePartitions(ctx context.Context, topic, group string, partitions []int) (buffer.Consumer, error) {
	n, err := b.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := buffer.CheckPartitions(partitions, n); err != nil {
		return nil, fmt.Errorf("kafka: consume %s: %w", topic, err)
	}
	return b.consume(ctx, topic, group, n, partitions)
}

// consume reads partitions, valid and distinct partitions of topic, which has n.
func (b *Buffer) consume(ctx context.Context, topic, group string, n int, partitions []int) (buffer.Consumer, error) {
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	next, err := b.committed(octx, topic, group)
	if err != nil {
		return nil, fmt.Errorf("kafka: offsets of %s/%s: %w", group, topic, err)
	}
	start := make(map[int32]kgo.Offset, len(partitions))
	owned := make([]bool, n)
	for _, p := range partitions {
		owned[p] = true
		start[int32(p)] = kgo.NewOffset().AtStart()
		if off, ok := next[int32(p)]; ok {
			start[int32(p)] = kgo.NewOffset().At(off)
		}
	}
	opts := append(b.clientOpts(), b.cfg.Opts...)
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consume %s: %w", topic, err)
	}
	c := &consumer{b: b, topic: topic, group: group, owned: owned, cl: cl}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		cl.Close()
		return nil, buffer.ErrClosed
	}
	b.consumers[c] = struct{}{}
	return c, nil
}

// Lag returns, per partition, how many records group has not committed: the end offset (high
// watermark) minus the committed offset, or minus the log start when the group has none or
// committed below it (those records are deleted: nobody will read them).
func (b *Buffer) Lag(ctx context.Context, topic, group string) ([]int64, error) {
	n, err := b.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag of %s: %w", topic, err)
	}
	starts, err := b.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag of %s: %w", topic, err)
	}
	next, err := b.committed(ctx, topic, group)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag of %s/%s: %w", group, topic, err)
	}
	out := make([]int64, n)
	for p := range int32(n) {
		end, ok := ends.Lookup(topic, p)
		start, ok2 := starts.Lookup(topic, p)
		if !ok || !ok2 || end.Err != nil || start.Err != nil {
			return nil, fmt.Errorf("kafka: lag of %s: no offsets of partition %d: %w", topic, p, errors.Join(end.Err, start.Err))
		}
		from := start.Offset
		if off, ok := next[p]; ok && off > from {
			from = off
		}
		out[p] = max(end.Offset-from, 0)
	}
	return out, nil
}

// Close closes the consumers and the producer; pending Appends fail with ErrClosed.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	consumers := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		consumers = append(consumers, c)
	}
	b.mu.Unlock()
	for _, c := range consumers {
		_ = c.Close()
	}
	b.cl.Close()
	return nil
}

// consumer reads some partitions (often all) of one topic for one group with its own client,
// which holds the records fetched ahead of Fetch.
type consumer struct {
	b            *Buffer
	topic, group string
	owned        []bool // per partition of the topic: read by this consumer
	cl           *kgo.Client

	mu      sync.Mutex
	pending error // a fetch error seen with records, returned by the next Fetch
	closed  bool
}

// Fetch waits for at least one record and returns up to max; the client keeps the rest for the
// next Fetch.
func (c *consumer) Fetch(ctx context.Context, max int) ([]buffer.Record, error) {
	if max < 1 {
		max = 1
	}
	for {
		c.mu.Lock()
		closed, pending := c.closed, c.pending
		c.pending = nil
		c.mu.Unlock()
		if closed {
			return nil, buffer.ErrClosed
		}
		if pending != nil {
			return nil, pending
		}
		fetches := c.cl.PollRecords(ctx, max)
		var ferr error
		fetches.EachError(func(topic string, p int32, err error) {
			if ferr == nil {
				ferr = c.fetchError(ctx, p, err)
			}
		})
		recs := make([]buffer.Record, 0, fetches.NumRecords())
		fetches.EachRecord(func(r *kgo.Record) {
			recs = append(recs, buffer.Record{Topic: r.Topic, Partition: int(r.Partition), Offset: uint64(r.Offset),
				Key: r.Key, Value: r.Value})
		})
		if len(recs) > 0 {
			if ferr != nil {
				c.mu.Lock()
				c.pending = ferr
				c.mu.Unlock()
			}
			return recs, nil
		}
		if ferr != nil {
			return nil, ferr
		}
		// A poll can end with neither records nor errors (an empty fetch response): wait again.
	}
}

// fetchError turns an error out of a poll into Fetch's error.
func (c *consumer) fetchError(ctx context.Context, p int32, err error) error {
	switch {
	case errors.Is(err, kgo.ErrClientClosed):
		return buffer.ErrClosed
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return ctx.Err()
	case p < 0:
		return fmt.Errorf("kafka: reading %s: %w", c.topic, err)
	default:
		// kgo.ErrDataLoss among others: the broker lost records and the client resumed
		// elsewhere. The stage hears of it; the next Fetch continues.
		return fmt.Errorf("kafka: reading %s partition %d: %w", c.topic, p, err)
	}
}

// Commit commits next as the group's offset of partition, outside any group generation.
func (c *consumer) Commit(ctx context.Context, partition int, next uint64) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return buffer.ErrClosed
	}
	if err := c.b.check(); err != nil {
		return err
	}
	if partition < 0 || partition >= len(c.owned) || !c.owned[partition] {
		// Another consumer of the group may own it: a commit here would move its offset.
		return fmt.Errorf("kafka: commit %s/%s: partition %d is not read by this consumer", c.group, c.topic, partition)
	}
	if next > math.MaxInt64 {
		return fmt.Errorf("kafka: commit %s/%s/%d: offset %d out of range", c.group, c.topic, partition, next)
	}
	// Only this partition: the request must not carry offsets of partitions that another
	// instance reads and commits.
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: c.topic, Partition: int32(partition), At: int64(next), LeaderEpoch: -1})
	ctx, cancel := context.WithTimeout(ctx, c.b.cfg.Timeout)
	defer cancel()
	if err := c.b.adm.CommitAllOffsets(ctx, c.group, os); err != nil {
		return fmt.Errorf("kafka: commit %s/%s/%d: %w", c.group, c.topic, partition, err)
	}
	return nil
}

// Close closes the consumer's client; a Fetch in progress returns ErrClosed.
func (c *consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.b.mu.Lock()
	delete(c.b.consumers, c)
	c.b.mu.Unlock()
	c.cl.Close()
	return nil
}

// logger passes franz-go's warnings and errors to slog.
type logger struct{ l *slog.Logger }

func (logger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (g logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	g.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}

var (
	_ buffer.Buffer            = (*Buffer)(nil)
	_ buffer.Lagger            = (*Buffer)(nil)
	_ buffer.PartitionConsumer = (*Buffer)(nil)
)
