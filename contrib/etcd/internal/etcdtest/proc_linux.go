package etcdtest

import "syscall"

// sysProcAttr has the kernel kill etcd if the test binary dies first (a
// panic, a test timeout), so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
