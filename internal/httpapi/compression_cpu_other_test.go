//go:build !linux

package httpapi

import "time"

// threadCPU is not measured off Linux: the benchmarks then report no cpu-ns/op.
func threadCPU() time.Duration { return 0 }
