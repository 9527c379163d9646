package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// HashToken returns the "sha256:<hex>" form the config stores instead of a token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// requireToken guards the admin API with a bearer token whose hash is in the config.
func requireToken(hash string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := ""
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			got = HashToken(strings.TrimSpace(h[7:]))
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(hash)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="weir-admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
