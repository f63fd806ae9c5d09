//go:build !linux

package memlimit

import (
	"context"
	"time"
)

// TrimPeriod is how often TrimBinaryEvery would trim; see the Linux file.
const TrimPeriod = 10 * time.Second

// TrimBinary does nothing here: only Linux is measured and trimmed.
func TrimBinary() (int, error) { return 0, nil }

// TrimBinaryEvery returns at once here.
func TrimBinaryEvery(ctx context.Context) {}
