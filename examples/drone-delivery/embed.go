// Package dronedelivery carries the Drone Delivery example's files into the weir binary, so
// that `weir bench --workflow` can run the example's workflow anywhere.
package dronedelivery

import "embed"

// Files holds weir.yaml, the delivery request schema and a sample request.
//
//go:embed weir.yaml delivery.schema.json delivery.json
var Files embed.FS
