package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCeilingAnswers(t *testing.T) {
	url := ceiling(t)
	tests := []struct {
		path, body   string
		wantStatus   int
		wantAccepted int
	}{
		{"/v1/messages/order", `{"id":"1"}`, http.StatusAccepted, -1},
		{"/v1/messages/order/batch", "{}\n{}\n{}\n", http.StatusOK, 3},
		{"/v1/messages/order/batch", "{}\n{}", http.StatusOK, 2},
		{"/v1/messages/order/batch", strings.Repeat("{}\n", 50_000), http.StatusOK, 50_000},
		{"/v1/messages/order/batch", "", http.StatusOK, 0},
	}
	for _, tt := range tests {
		res, err := http.Post(url+tt.path, "application/x-ndjson", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Accepted *int   `json:"accepted"`
			Status   string `json:"status"`
		}
		err = json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if err != nil || res.StatusCode != tt.wantStatus {
			t.Fatalf("%s: status %d, %v", tt.path, res.StatusCode, err)
		}
		if tt.wantAccepted < 0 {
			if out.Status != "accepted" {
				t.Fatalf("%s: %+v", tt.path, out)
			}
		} else if out.Accepted == nil || *out.Accepted != tt.wantAccepted {
			t.Fatalf("%s with %d bytes: accepted %v, want %d", tt.path, len(tt.body), out.Accepted, tt.wantAccepted)
		}
	}
}

func TestCeilingStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	url, stop, err := Ceiling(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if res, err := client.Post(url, "application/json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}
	cancel()
	for deadline := time.Now().Add(5 * time.Second); ; {
		res, err := client.Post(url, "application/json", strings.NewReader("{}"))
		if err != nil {
			break // closed
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("ceiling server still answers after its context ended")
		}
	}
	stop()
	stop() // idempotent
}
