package deliver_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/deliver"
)

// The example from the Standard Webhooks specification (and the Svix libraries' tests).
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// refSign is the spec's scheme written out independently of the package under test.
func refSign(secret []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func mustSecret(t testing.TB, s string) []byte {
	t.Helper()
	b, err := deliver.ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return b
}

func TestSignSpecVector(t *testing.T) {
	secret := mustSecret(t, specSecret)
	got := deliver.Sign(secret, specID, time.Unix(specTS, 0), []byte(specBody))
	if got != specSig {
		t.Fatalf("Sign = %s, want spec value %s", got, specSig)
	}
	if ref := refSign(secret, specID, specTS, []byte(specBody)); ref != specSig {
		t.Fatalf("reference computation disagrees with the spec: %s", ref)
	}
	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", strconv.Itoa(specTS))
	h.Set("webhook-signature", specSig)
	if err := deliver.Verify([][]byte{secret}, h, []byte(specBody), 0, time.Unix(specTS+10, 0)); err != nil {
		t.Fatalf("Verify(spec example) = %v", err)
	}
}

func TestParseSecret(t *testing.T) {
	raw := mustSecret(t, specSecret)
	for _, in := range []string{
		specSecret,
		strings.TrimPrefix(specSecret, "whsec_"),
		" " + specSecret + "\n",
		deliver.FormatSecret(raw),
		"whsec_" + base64.RawStdEncoding.EncodeToString([]byte("short")),
	} {
		if _, err := deliver.ParseSecret(in); err != nil {
			t.Errorf("ParseSecret(%q) = %v", in, err)
		}
	}
	if got := mustSecret(t, deliver.FormatSecret(raw)); string(got) != string(raw) {
		t.Error("FormatSecret does not round-trip")
	}
	for _, in := range []string{"", "whsec_", "whsec_!!not base64!!", "whsec_abc$"} {
		_, err := deliver.ParseSecret(in)
		if !errors.Is(err, deliver.ErrSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrSecret", in, err)
		}
		if err != nil && in != "" && strings.Contains(err.Error(), strings.TrimPrefix(in, "whsec_")) && strings.TrimPrefix(in, "whsec_") != "" {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
	gen := deliver.GenerateSecret()
	if b := mustSecret(t, gen); len(b) != 32 {
		t.Errorf("GenerateSecret gave %d bytes", len(b))
	}
	if gen == deliver.GenerateSecret() {
		t.Error("GenerateSecret repeats itself")
	}
}

func TestParseSecrets(t *testing.T) {
	a, b := deliver.GenerateSecret(), deliver.GenerateSecret()
	got, err := deliver.ParseSecrets(a + " " + b + "," + a)
	if err != nil || len(got) != 3 {
		t.Fatalf("ParseSecrets = %d, %v", len(got), err)
	}
	if _, err := deliver.ParseSecrets(a + " whsec_***"); !errors.Is(err, deliver.ErrSecret) {
		t.Fatalf("bad second secret: %v", err)
	}
	if _, err := deliver.ParseSecrets("  "); !errors.Is(err, deliver.ErrSecret) {
		t.Fatalf("empty: %v", err)
	}
}

func signedHeader(secrets [][]byte, id string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", deliver.SignAll(secrets, id, ts, body))
	return h
}

func TestVerify(t *testing.T) {
	secret := mustSecret(t, deliver.GenerateSecret())
	other := mustSecret(t, deliver.GenerateSecret())
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"order":42}`)
	ok := signedHeader([][]byte{secret}, "msg_1", now, body)

	if err := deliver.Verify([][]byte{secret}, ok, body, time.Minute, now.Add(30*time.Second)); err != nil {
		t.Fatalf("valid delivery rejected: %v", err)
	}
	if err := deliver.Verify([][]byte{other, secret}, ok, body, time.Minute, now); err != nil {
		t.Fatalf("second configured secret not tried: %v", err)
	}

	with := func(k, v string) http.Header {
		h := ok.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	cases := []struct {
		name    string
		secrets [][]byte
		h       http.Header
		body    []byte
		now     time.Time
		want    error
	}{
		{"tampered body", [][]byte{secret}, ok, []byte(`{"order":43}`), now, deliver.ErrSignature},
		{"wrong secret", [][]byte{other}, ok, body, now, deliver.ErrSignature},
		{"no secrets", nil, ok, body, now, deliver.ErrSignature},
		{"old timestamp", [][]byte{secret}, ok, body, now.Add(2 * time.Minute), deliver.ErrTimestamp},
		{"future timestamp", [][]byte{secret}, ok, body, now.Add(-2 * time.Minute), deliver.ErrTimestamp},
		{"timestamp not a number", [][]byte{secret}, with("webhook-timestamp", "yesterday"), body, now, deliver.ErrTimestamp},
		{"huge timestamp", [][]byte{secret}, with("webhook-timestamp", "9223372036854775807"), body, now, deliver.ErrTimestamp},
		{"timestamp changed", [][]byte{secret}, with("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), body, now, deliver.ErrSignature},
		{"id changed", [][]byte{secret}, with("webhook-id", "msg_2"), body, now, deliver.ErrSignature},
		{"missing id", [][]byte{secret}, with("webhook-id", ""), body, now, deliver.ErrMissingHeader},
		{"missing timestamp", [][]byte{secret}, with("webhook-timestamp", ""), body, now, deliver.ErrMissingHeader},
		{"missing signature", [][]byte{secret}, with("webhook-signature", ""), body, now, deliver.ErrMissingHeader},
		{"other version only", [][]byte{secret}, with("webhook-signature", "v1a,"+strings.TrimPrefix(ok.Get("webhook-signature"), "v1,")), body, now, deliver.ErrSignature},
		{"garbage", [][]byte{secret}, with("webhook-signature", "v1,%%% v1, , v1,AAAA"), body, now, deliver.ErrSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := deliver.Verify(c.secrets, c.h, c.body, time.Minute, c.now)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}

	// An unknown version next to a good signature does not spoil it.
	mixed := with("webhook-signature", "v2,abc "+ok.Get("webhook-signature"))
	if err := deliver.Verify([][]byte{secret}, mixed, body, time.Minute, now); err != nil {
		t.Fatalf("good signature after an unknown version: %v", err)
	}
	// Zero tolerance means the default five minutes.
	if err := deliver.Verify([][]byte{secret}, ok, body, 0, now.Add(4*time.Minute)); err != nil {
		t.Fatalf("default tolerance: %v", err)
	}
	if err := deliver.Verify([][]byte{secret}, ok, body, 0, now.Add(6*time.Minute)); !errors.Is(err, deliver.ErrTimestamp) {
		t.Fatalf("default tolerance exceeded: %v", err)
	}
}

func TestRotationSignsWithEverySecret(t *testing.T) {
	oldS := mustSecret(t, deliver.GenerateSecret())
	newS := mustSecret(t, deliver.GenerateSecret())
	ts := time.Unix(1_700_000_000, 0)
	body := []byte(`{}`)
	h := signedHeader([][]byte{newS, oldS}, "msg_rot", ts, body)

	sigs := strings.Fields(h.Get("webhook-signature"))
	want := []string{refSign(newS, "msg_rot", ts.Unix(), body), refSign(oldS, "msg_rot", ts.Unix(), body)}
	if len(sigs) != 2 || sigs[0] != want[0] || sigs[1] != want[1] {
		t.Fatalf("signatures = %q, want %q", sigs, want)
	}
	// A receiver that knows only one of the two secrets accepts the delivery.
	for _, s := range [][]byte{oldS, newS} {
		if err := deliver.Verify([][]byte{s}, h, body, time.Minute, ts); err != nil {
			t.Fatalf("receiver with one secret: %v", err)
		}
	}
	if deliver.SignAll(nil, "x", ts, body) != "" {
		t.Fatal("SignAll without secrets should be empty")
	}
}

func FuzzVerify(f *testing.F) {
	secret := []byte("fuzz-secret")
	ts := time.Unix(1_700_000_000, 0)
	f.Add("msg_1", "1700000000", deliver.Sign(secret, "msg_1", ts, []byte("{}")), []byte("{}"))
	f.Add("", "", "", []byte(nil))
	f.Add("id", "-1", "v1,AAAA v1,==== v2,", []byte("x"))
	f.Add("id", "1700000000", "v1,"+strings.Repeat("A", 100), []byte("x"))
	f.Fuzz(func(t *testing.T, id, tsText, sig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", tsText)
		h.Set("webhook-signature", sig)
		err := deliver.Verify([][]byte{secret}, h, body, time.Minute, ts)
		// Acceptance is only right when the real signature over the header's own texts is there.
		if err == nil && !strings.Contains(sig, refSignText(secret, id, tsText, body)) {
			t.Fatalf("accepted a forged signature %q", sig)
		}
	})
}

func refSignText(secret []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func FuzzParseSecret(f *testing.F) {
	f.Add(specSecret)
	f.Add("whsec_")
	f.Add("whsec_AAAA====")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := deliver.ParseSecret(s)
		if err == nil && len(b) == 0 {
			t.Fatal("empty secret accepted")
		}
	})
}
