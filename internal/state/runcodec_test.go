package state

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func sampleRun() *Run {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	return &Run{ID: "wf_1", Workflow: "ship", Client: "acme", Type: "order", MessageID: "o-1", Key: "c-1",
		ReceivedAt: at, State: RunCompensating, Reason: "step c failed", StartedAt: at, UpdatedAt: at.Add(time.Second),
		Deadline: at.Add(time.Hour), saved: RunCompensating,
		Steps: []StepRun{
			{Name: "a", Status: StepSucceeded, Attempts: 2, StartedAt: at, FinishedAt: at.Add(time.Millisecond), FailedAt: at,
				Code: 200, Response: json.RawMessage(`{"id":"p-1"}`),
				Compensation: &Compensation{Status: StepCompensated, Attempts: 1, At: at.Add(2 * time.Second), Code: 204, Error: "", Letter: "x"}},
			{Name: "b", Status: StepSkipped},
			{Name: "c", Status: StepFailed, Attempts: 1, Code: 422, Error: "refused"},
			{Name: "d", Status: StepRetrying, Attempts: 3, Code: 503, Unsure: true, NextAt: at.Add(time.Minute)},
		}}
}

func TestRunCodecRoundTrip(t *testing.T) {
	r := sampleRun()
	got, err := decodeRun(r.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	for _, bad := range [][]byte{nil, {9}, r.encode()[:20], append(r.encode(), 0)} {
		if _, err := decodeRun(bad); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
}

func FuzzDecodeRun(f *testing.F) {
	f.Add(sampleRun().encode())
	f.Add((&Run{}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRun(b)
		if err != nil {
			return
		}
		// Whatever decodes encodes back to something that decodes the same.
		again, err := decodeRun(r.encode())
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func BenchmarkRunEncode(b *testing.B) {
	r := sampleRun()
	b.ReportAllocs()
	for b.Loop() {
		r.encode()
	}
}

func BenchmarkRunEncodeJSON(b *testing.B) {
	r := sampleRun()
	b.ReportAllocs()
	for b.Loop() {
		json.Marshal(r)
	}
}
