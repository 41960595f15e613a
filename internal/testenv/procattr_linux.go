package testenv

import "syscall"

// childProcAttr makes a child process get sig when the test binary dies (for
// example on a test timeout), so nothing it started outlives it.
func childProcAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: sig}
}
