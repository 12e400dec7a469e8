//go:build !linux

package main

import "errors"

// slackProbeEnv names the probe of the timer slack, which runs on Linux only.
const slackProbeEnv = "ACPLOAD_TEST_SLACK_PROBE"

// probeTimerSlack has nothing to probe outside Linux.
func probeTimerSlack(string) error { return errors.New("the timer slack is Linux's") }
