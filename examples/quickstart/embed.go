// Package quickstart carries the quickstart example's files into the weir binary, so that
// `weir serve` with no config can run the demo anywhere.
package quickstart

import "embed"

// Files holds weir.yaml, the order schema, the jq transform and a sample order.
//
//go:embed weir.yaml order.schema.json transform.jq order.json
var Files embed.FS

// DemoSecret is the demo partner's signing secret (the default in weir.yaml).
const DemoSecret = "whsec_ZGVtby1vbmx5LXNpZ25pbmctc2VjcmV0LWNoYW5nZS1tZQ=="
