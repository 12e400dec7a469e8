//go:build !linux

package main

import "errors"

// errPinUnsupported is -pin's answer where the bench cannot set a process's CPUs.
var errPinUnsupported = errors.New("-pin sets CPU affinity, which acpload does only on Linux")

// allowedCPUs refuses: see errPinUnsupported.
func allowedCPUs() ([]int, error) { return nil, errPinUnsupported }

// pinProcess refuses: see errPinUnsupported.
func pinProcess(int, []int) error { return errPinUnsupported }
