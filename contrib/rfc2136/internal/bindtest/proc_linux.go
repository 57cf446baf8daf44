package bindtest

import "syscall"

// sysProcAttr has the kernel kill named if the test binary dies first (a
// panic, a test timeout), so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
