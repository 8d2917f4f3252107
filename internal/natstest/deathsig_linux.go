package natstest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has Linux SIGKILL the child when the test process dies.
// (Strictly, when the thread that started it exits; Go ends a thread only
// when a goroutine locked to it returns, which these tests do not do, and
// the child's own parent check covers the rest.)
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
