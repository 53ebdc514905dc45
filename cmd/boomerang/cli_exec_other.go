//go:build !unix

package main

import "os/exec"

// ownProcessGroup: without Unix process groups, only COMMAND itself is
// killed when its context ends (exec.CommandContext's default).
func ownProcessGroup(cmd *exec.Cmd) {}

// killGroup: nothing more to kill without process groups.
func killGroup(cmd *exec.Cmd) {}
