package proctest

import "syscall"

// sysProcAttr has the kernel kill the server if the test binary dies first (a
// panic, a test timeout), so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
