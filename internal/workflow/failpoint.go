package workflow

import (
	"log/slog"
	"os"
	"strings"
)

// failpoints are the step boundaries at which a crash test makes Weir kill itself (SIGKILL, so
// nothing is flushed or closed), set with the WEIR_FAILPOINTS environment variable.
type failpoints map[string]bool

func parseFailpoints(s string) failpoints {
	if s == "" {
		return nil
	}
	f := failpoints{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			f[p] = true
		}
	}
	return f
}

// hit kills the process when the failpoint "<where>:<step>" is set.
func (f failpoints) hit(where, step string, log *slog.Logger) {
	if f == nil || !f[where+":"+step] {
		return
	}
	log.Warn("failpoint: killing the process", "at", where+":"+step)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Kill() // SIGKILL on Unix
	}
	select {} // the signal is on its way
}
