//go:build !linux

package bindtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
