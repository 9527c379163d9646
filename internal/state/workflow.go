package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/weirhq/weir/internal/buffer"
)

// Key prefixes of workflow runs.
const (
	prefixRun      = "w/" // w/<run id>: the run (runcodec.go)
	prefixRunState = "v/" // v/<state>\0<started unix ns, BE u64><run id>: runs by state, oldest first
)

// Run states.
const (
	RunRunning            = "running"             // steps are being called
	RunCompensating       = "compensating"        // a step failed for good: undoing the completed ones
	RunCompleted          = "completed"           // every step succeeded (or was skipped)
	RunFailed             = "failed"              // failed, and every completed step was compensated
	RunCompensationFailed = "compensation_failed" // failed, and a compensation could not succeed: see the dead letters
)

// RunStates lists the run states, in-flight ones first.
var RunStates = []string{RunRunning, RunCompensating, RunCompleted, RunFailed, RunCompensationFailed}

// Finished reports whether a run in this state will not call anything again (short of a replay).
func Finished(state string) bool {
	return state == RunCompleted || state == RunFailed || state == RunCompensationFailed
}

// Step statuses.
const (
	StepPending   = "pending"
	StepSucceeded = "succeeded"
	StepSkipped   = "skipped" // its condition was false
	StepRetrying  = "retrying"
	StepFailed    = "failed"
	// Compensation statuses.
	StepCompensated        = "compensated"
	StepCompensationFailed = "compensation_failed"
)

// Run is one execution of a workflow for one message: what each step did so far. It is saved
// after every step outcome, so a restarted Weir resumes it from there.
type Run struct {
	ID         string    `json:"id"`
	Workflow   string    `json:"workflow"`
	Client     string    `json:"client"`
	Type       string    `json:"type"`
	MessageID  string    `json:"message_id"`
	Key        string    `json:"key,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"` // why it failed
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Deadline   time.Time `json:"deadline"`
	Steps      []StepRun `json:"steps"`

	saved string // the state last saved (for the state index)
	fence *Lease // see Fence
}

// Fence makes every later write of r fail with ErrFenced unless l is still held: the lease of
// the partition the run's message is in, so that an instance that lost the partition (paused
// past its lease) cannot overwrite what the instance that took it over recorded since.
func (r *Run) Fence(l *Lease) { r.fence = l }

// StepRun is what one step of a run did.
type StepRun struct {
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts,omitempty"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	FailedAt   time.Time       `json:"first_failed_at,omitzero"` // first failure (for max_age)
	Code       int             `json:"status_code,omitempty"`
	Error      string          `json:"error,omitempty"`
	Response   json.RawMessage `json:"response,omitempty"` // the answer's JSON body, for later templates
	// Unsure is set once an attempt may have taken effect without a success to show for it (its
	// answer was lost, or transient): undo such a step too when the run fails.
	Unsure bool `json:"unsure,omitempty"`
	// NextAt is when a retrying step may be called again.
	NextAt time.Time `json:"next_attempt_at,omitzero"`
	// Compensation is set once the step has to be undone.
	Compensation *Compensation `json:"compensation,omitempty"`
}

// Compensation is what the compensating call of a step did.
type Compensation struct {
	Status   string    `json:"status"` // pending, retrying, compensated, compensation_failed
	Attempts int       `json:"attempts,omitempty"`
	At       time.Time `json:"at,omitzero"`
	FailedAt time.Time `json:"first_failed_at,omitzero"`
	Code     int       `json:"status_code,omitempty"`
	Error    string    `json:"error,omitempty"`
	Letter   string    `json:"dead_letter,omitempty"`
}

// RunID is the id of the run of (client, type, message id): stable, so a redelivered message
// finds its run, and different for two clients using the same message id.
func RunID(client, typ, id string) string {
	h := sha256.New()
	h.Write([]byte(client))
	h.Write([]byte{0})
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return "wf_" + hex.EncodeToString(h.Sum(nil)[:12])
}

func runKey(id string) []byte { return append([]byte(prefixRun), id...) }

func runStateKey(state string, started time.Time, id string) []byte {
	k := make([]byte, 0, len(prefixRunState)+len(state)+9+len(id))
	k = append(k, prefixRunState...)
	k = append(k, state...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(started.UnixNano()))
	return append(k, id...)
}

// WorkflowRun returns the run with the given id.
func (s *Store) WorkflowRun(id string) (*Run, error) {
	v, ok, err := s.space.Get(runKey(id))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	r, err := decodeRun(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, id)
	}
	return r, nil
}

func (s *Store) runKVs(r *Run, events []Event) ([]Op, error) {
	kvs := []Op{set(runKey(r.ID), r.encode())}
	if r.saved != r.State {
		if r.saved != "" {
			kvs = append(kvs, del(runStateKey(r.saved, r.StartedAt, r.ID)))
		}
		kvs = append(kvs, set(runStateKey(r.State, r.StartedAt, r.ID), []byte{}))
	}
	for _, e := range events {
		k, v, err := eventKV(e)
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, set(k, v))
	}
	return kvs, nil
}

// SaveRun writes r (with status events of its message); with sync it is on disk when SaveRun returns (a step's outcome), without it
// the next synced write of the log carries it.
func (s *Store) SaveRun(r *Run, sync bool, events ...Event) error {
	kvs, err := s.runKVs(r, events)
	if err != nil {
		return err
	}
	if err := s.space.Write(context.Background(), Batch{Ops: kvs, Sync: sync, Fence: r.fence}); err != nil {
		return err
	}
	r.saved = r.State
	return nil
}

// SaveRunWith writes r and appends msgs to topic in one fsync'd batch: a finished run and the
// event announcing it are never one without the other.
func (s *Store) SaveRunWith(ctx context.Context, r *Run, topic string, msgs []buffer.Message, events ...Event) error {
	kvs, err := s.runKVs(r, events)
	if err != nil {
		return err
	}
	if err := s.space.AppendWith(ctx, topic, msgs, Batch{Ops: kvs, Sync: true, Fence: r.fence}); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	r.saved = r.State
	return nil
}

// RunFilter selects workflow runs.
type RunFilter struct {
	State    string // required: runs are listed by state
	Workflow string
	Type     string
	Client   string
	Limit    int    // default 100
	After    string // the Next of the previous page
}

// Runs lists runs in a state, oldest first, and the cursor of the next page ("" at the end).
func (s *Store) Runs(f RunFilter) ([]Run, string, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	lower := runStateKey(f.State, time.Time{}, "")
	lower = lower[:len(lower)-8]
	upper := append(bytes.Clone(lower[:len(lower)-1]), 1)
	if f.After != "" {
		after, err := hex.DecodeString(f.After)
		if err != nil || !bytes.HasPrefix(after, lower) {
			return nil, "", fmt.Errorf("state: bad cursor %q", f.After)
		}
		lower = append(after, 0)
	}
	var out []Run
	next := ""
	err := s.space.Scan(lower, upper, func(k, _ []byte) error {
		id := string(k[len(prefixRunState)+len(f.State)+9:])
		r, err := s.WorkflowRun(id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if (f.Workflow != "" && r.Workflow != f.Workflow) || (f.Type != "" && r.Type != f.Type) || (f.Client != "" && r.Client != f.Client) {
			return nil
		}
		out = append(out, *r)
		if len(out) == f.Limit {
			next = hex.EncodeToString(k)
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// CountRuns returns how many runs are in a state.
func (s *Store) CountRuns(state string) (int, error) {
	lower := runStateKey(state, time.Time{}, "")
	lower = lower[:len(lower)-8]
	return s.count(string(lower), string(append(bytes.Clone(lower[:len(lower)-1]), 1)))
}

// finishedRunOps removes a finished run (with its receipt's expiry); a run still in flight stays.
func (s *Store) finishedRunOps(id string) ([]Op, error) {
	r, err := s.WorkflowRun(id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// In flight, or waiting for manual handling (its dead letter outlives the receipt, and a
	// replay must find the run, not start the saga again): kept.
	if !Finished(r.State) || r.State == RunCompensationFailed {
		return nil, nil
	}
	return []Op{del(runKey(id)), del(runStateKey(r.State, r.StartedAt, id))}, nil
}

// DeleteRun removes a run and its index entry (a finished run whose message id was reused after
// its receipt expired).
func (s *Store) DeleteRun(r *Run) error {
	return s.space.Write(context.Background(), Batch{Ops: []Op{del(runKey(r.ID)), del(runStateKey(r.saved, r.StartedAt, r.ID))}, Fence: r.fence})
}
