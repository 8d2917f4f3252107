//go:build !linux

package natstest

import "os/exec"

// setDeathSignal does nothing here: the child's parent check alone ends it.
func setDeathSignal(*exec.Cmd) {}
