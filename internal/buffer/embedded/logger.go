package embedded

import (
	"fmt"
	"log/slog"
)

// pebbleLogger adapts slog to Pebble's Logger.
//
// Pebble calls Fatalf when it cannot go on, notably when a WAL fsync or write fails under a commit
// ("fatal commit error"); its default logger then exits the process. Here Fatalf logs and panics
// with a *fatalError: on the paths where the log commits (Log.apply) the panic is recovered, after
// Pebble released its locks, and becomes a poisoned log that refuses writes (R5) while the process
// keeps serving reads and answering 503. On Pebble's background goroutines (flush, compaction,
// MANIFEST writes) nothing recovers it and the process ends, as it would with Pebble's default.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	fe := &fatalError{msg: msg}
	for _, a := range args {
		if err, ok := a.(error); ok {
			fe.cause = err // keep it inspectable: errors.Is(err, syscall.ENOSPC) on a full disk
			break
		}
	}
	panic(fe)
}

// fatalError is the panic value of pebbleLogger.Fatalf.
type fatalError struct {
	msg   string
	cause error
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.cause }
