// Package dronedelivery carries the Drone Delivery example's files into the weir binary, so
// that `weir bench --workflow` can run the example's workflow anywhere, and tests can run it as
// it is.
package dronedelivery

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Files holds weir.yaml, the delivery request schema and a sample request.
//
//go:embed weir.yaml delivery.schema.json delivery.json
var Files embed.FS

// ShortRetries are the edits (see Write) that shorten the example's retry schedules to
// milliseconds, so that a test does not wait minutes for a step that failed four times in a row.
var ShortRetries = []string{
	"retry: {schedule: [50ms, 200ms, 1s, 5s, 30s, 2m]}", "retry: {schedule: [10ms, 20ms, 50ms, 100ms, 200ms, 500ms]}",
	"compensation_retry: {schedule: [1s, 5s, 30s, 2m, 10m, 1h]}", "compensation_retry: {schedule: [10ms, 20ms, 50ms, 100ms, 200ms, 500ms]}",
}

// Write writes the example's files into dir and returns the path of its weir.yaml, after
// applying edits: pairs of a text of weir.yaml and its replacement, each applied to every
// occurrence. An edit whose text is not in the file is an error, so that a test notices when
// the example changes under it.
func Write(dir string, edits ...string) (string, error) {
	for _, name := range []string{"weir.yaml", "delivery.schema.json", "delivery.json"} {
		b, err := Files.ReadFile(name)
		if err != nil {
			return "", err
		}
		if name == "weir.yaml" {
			text := string(b)
			for i := 0; i+1 < len(edits); i += 2 {
				if !strings.Contains(text, edits[i]) {
					return "", fmt.Errorf("the example's weir.yaml no longer has %q", edits[i])
				}
				text = strings.ReplaceAll(text, edits[i], edits[i+1])
			}
			b = []byte(text)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "weir.yaml"), nil
}
