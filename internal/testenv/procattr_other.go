//go:build !linux

package testenv

import "syscall"

// childProcAttr returns no special attributes outside Linux.
func childProcAttr(syscall.Signal) *syscall.SysProcAttr { return nil }
