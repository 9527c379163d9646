package deliver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names. http.Header canonicalises them (Webhook-Id and so on); the
// spec's lower-case spelling is kept here because it is what partners read in the docs.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts a Standard Webhooks secret in its textual form.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the receiver's clock when Verify is
// given no tolerance. It matches the Standard Webhooks reference libraries.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify and ParseSecret. Callers branch on them with errors.Is; the wrapped
// message adds detail but never a secret or a signature.
var (
	ErrMissingHeader = errors.New("deliver: missing webhook header")
	ErrTimestamp     = errors.New("deliver: webhook-timestamp outside tolerance")
	ErrSignature     = errors.New("deliver: no matching webhook signature")
	ErrSecret        = errors.New("deliver: invalid webhook secret")
)

// ParseSecret decodes a Standard Webhooks secret: "whsec_" followed by base64, or the base64
// alone. Padded and unpadded standard base64 are both accepted. The error never repeats the
// input, so it is safe to log.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, SecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrSecret)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		// err from encoding/base64 names only an offset, but say less anyway.
		return nil, fmt.Errorf("%w: not base64 (with or without the %q prefix)", ErrSecret, SecretPrefix)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrSecret)
	}
	return b, nil
}

// ParseSecrets decodes one or more secrets separated by spaces or commas, the way a rotation is
// written in configuration ("whsec_new whsec_old"). Every secret is used to sign; receivers
// accept any of them.
func ParseSecrets(s string) ([][]byte, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrSecret)
	}
	out := make([][]byte, 0, len(fields))
	for i, f := range fields {
		b, err := ParseSecret(f)
		if err != nil {
			return nil, fmt.Errorf("secret %d of %d: %w", i+1, len(fields), err)
		}
		out = append(out, b)
	}
	return out, nil
}

// FormatSecret renders secret in the "whsec_<base64>" form partners paste into their verifier.
func FormatSecret(secret []byte) string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(secret)
}

// GenerateSecret returns a new random 32-byte secret in the "whsec_" form.
func GenerateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return FormatSecret(b)
}

// Sign returns the Standard Webhooks v1 signature of one attempt:
// "v1," + base64(HMAC-SHA256(secret, id + "." + unix-seconds(ts) + "." + body)).
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, id, strconv.FormatInt(ts.Unix(), 10), body))
}

// SignAll signs with every secret and joins the signatures with spaces, the webhook-signature
// value during a rotation. It returns "" when secrets is empty.
func SignAll(secrets [][]byte, id string, ts time.Time, body []byte) string {
	switch len(secrets) {
	case 0:
		return ""
	case 1:
		return Sign(secrets[0], id, ts, body)
	}
	var sb strings.Builder
	for i, s := range secrets {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(Sign(s, id, ts, body))
	}
	return sb.String()
}

func mac(secret []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a received webhook the way a Standard Webhooks receiver does: webhook-id and
// webhook-timestamp must be present, the timestamp within tolerance of now (either side;
// tolerance <= 0 means DefaultTolerance), and at least one "v1,<base64>" entry of the
// space-separated webhook-signature must match one of secrets. Signatures of other versions are
// ignored. MACs are compared in constant time.
func Verify(secrets [][]byte, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id := header.Get(HeaderID)
	tsText := header.Get(HeaderTimestamp)
	sigs := header.Get(HeaderSignature)
	switch {
	case id == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderID)
	case tsText == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	case sigs == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secret configured", ErrSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: not unix seconds", ErrTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in seconds so that huge values cannot overflow a time.Duration.
	if d := now.Unix() - ts; d > int64(tolerance/time.Second) {
		return fmt.Errorf("%w: %ds old", ErrTimestamp, d)
	} else if -d > int64(tolerance/time.Second) {
		return fmt.Errorf("%w: %ds in the future", ErrTimestamp, -d)
	}

	want := make([][]byte, len(secrets))
	for i, s := range secrets {
		want[i] = mac(s, id, tsText, body)
	}
	var buf [48]byte // DecodedLen(64): room for any candidate we try
	for _, sig := range strings.Fields(sigs) {
		b64, ok := strings.CutPrefix(sig, "v1,")
		if !ok || len(b64) > 64 {
			continue
		}
		n, err := base64.StdEncoding.Decode(buf[:], []byte(b64))
		if err != nil || n != sha256.Size {
			continue
		}
		for _, w := range want {
			if hmac.Equal(buf[:n], w) {
				return nil
			}
		}
	}
	return ErrSignature
}
