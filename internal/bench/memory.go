package bench

import (
	"bytes"
	"os"
	"strconv"
)

// ResidentBytes returns this process's resident memory (VmRSS in /proc/self/status), for
// Config.Resident when the server under test runs in the same process. ok is false where there
// is no /proc (anything but Linux).
func ResidentBytes() (n int64, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parseVmRSS(b)
}

// parseVmRSS reads the "VmRSS:   123456 kB" line of a /proc/<pid>/status file.
func parseVmRSS(status []byte) (int64, bool) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		rest, found := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !found {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}
