package main

import (
	"testing"
	"time"
)

func TestEnvDuration(t *testing.T) {
	for _, c := range []struct {
		val  string
		want time.Duration
	}{
		{"", 500 * time.Millisecond},
		{"2s", 2 * time.Second},
		{"1500ms", 1500 * time.Millisecond},
		{"soon", 500 * time.Millisecond}, // unparsable: the default, which --help shows
		{"-1s", 500 * time.Millisecond},  // a timeout cannot be negative
		{"0", 500 * time.Millisecond},
	} {
		t.Setenv("WARREN_TEST_DURATION", c.val)
		if got := envDuration("WARREN_TEST_DURATION", 500*time.Millisecond); got != c.want {
			t.Errorf("WARREN_TEST_DURATION=%q: %v, want %v", c.val, got, c.want)
		}
	}
}
