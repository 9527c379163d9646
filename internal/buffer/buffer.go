// Package buffer defines the partitioned, durable log that sits between Weir's stages.
//
// Ingest appends partner messages to a topic; each stage (process, persist, deliver) reads its
// topic as a consumer group and commits the offset up to which every record is handled. A record's
// key picks its partition, so records with the same key stay in order. The embedded Pebble log is
// the default backend; NATS JetStream and Kafka adapters implement the same interface and must pass
// the same conformance suite (package buffertest).
package buffer

import (
	"context"
	"errors"
	"hash/fnv"
)

// ErrClosed is returned by every call made after Close.
var ErrClosed = errors.New("buffer: closed")

// ErrUnavailable marks a failure to accept writes (disk full, fsync error, broker down). Ingest
// answers 503 with Retry-After when Append fails with it.
var ErrUnavailable = errors.New("buffer: unavailable")

// ErrCorrupt marks a record whose checksum does not match: acknowledged data was damaged. It is
// never skipped silently.
var ErrCorrupt = errors.New("buffer: corrupt record")

// Message is what a producer appends: the key chooses the partition and orders the records that
// share it; the value is opaque to the buffer.
type Message struct {
	Key   []byte
	Value []byte
}

// Record is a message as stored in a partition, with its position.
type Record struct {
	Topic     string
	Partition int
	Offset    uint64
	Key       []byte
	Value     []byte
}

// TopicConfig declares a topic. Groups lists the consumer groups that will read it, so that a
// backend that cleans up consumed data never removes records a declared group has not committed.
type TopicConfig struct {
	Name       string
	Partitions int
	Groups     []string
}

// Buffer is the durable partitioned log. All methods are safe for concurrent use by any number of
// goroutines: ingest handlers append concurrently, and each stage runs one Consumer per group.
type Buffer interface {
	// EnsureTopic creates the topic if it does not exist. Changing the partition count of an
	// existing topic is an error.
	EnsureTopic(ctx context.Context, t TopicConfig) error
	// Append writes msgs to topic and returns only once they are durable (fsync'd, or acknowledged
	// by a quorum). Messages are placed with Partition(key, n). On error none of the returned
	// guarantees hold for any message in the call; the caller must not acknowledge them.
	Append(ctx context.Context, topic string, msgs []Message) error
	// Consume opens a consumer of topic for group, starting after the group's committed offsets.
	Consume(ctx context.Context, topic, group string) (Consumer, error)
	// Close releases the buffer; pending Appends fail with ErrClosed.
	Close() error
}

// Consumer reads a topic for one consumer group. Fetch is called from one goroutine (the stage's
// fetcher) while Commit may be called concurrently from one other (the stage's dispatcher);
// Close may be called from any goroutine.
type Consumer interface {
	// Fetch blocks until at least one record is available (or ctx ends) and returns up to max
	// records, in offset order within each partition. Records are returned once per consumer;
	// a new consumer of the same group starts again after the committed offsets.
	Fetch(ctx context.Context, max int) ([]Record, error)
	// Commit records that every record of partition with an offset below next is handled.
	// Commits need not be durable at once, but a durable commit never runs ahead of handling.
	Commit(ctx context.Context, partition int, next uint64) error
	// Close stops the consumer; it does not commit.
	Close() error
}

// PartitionConsumer is an optional capability of a Buffer: a consumer of some partitions of a
// topic only. Instances that share a topic (each holding the leases of some partitions) read
// their partitions through it. Consumers of one group over disjoint partition sets, in one
// process or several, do not disturb each other's reads or committed offsets.
type PartitionConsumer interface {
	// ConsumePartitions is Consume restricted to partitions: Fetch returns records of those
	// partitions only, and Commit of any other partition is an error.
	ConsumePartitions(ctx context.Context, topic, group string, partitions []int) (Consumer, error)
}

// Lagger is an optional capability of a Buffer: how far a consumer group is behind. Weir's
// metrics ask for it on every scrape (the autoscaling signal), from any goroutine.
type Lagger interface {
	// Lag returns, for each partition of topic, how many records group has not committed.
	Lag(ctx context.Context, topic, group string) ([]int64, error)
}

// Partition maps a key to one of n partitions (FNV-1a). Every backend uses it so that a key
// lands in the same partition whatever the backend.
func Partition(key []byte, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n))
}
