package main

import (
	"os"
	"strconv"
	"testing"
)

func TestResourcesCountsThisProcess(t *testing.T) {
	before, err := ownResources()
	if err != nil {
		t.Fatal(err)
	}
	if before.Goroutines < 1 || before.FDs < 3 || before.Threads < 1 {
		t.Fatalf("resources %+v: want at least a goroutine, stdio and a thread", before)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after, err := ownResources()
	if err != nil {
		t.Fatal(err)
	}
	if after.FDs != before.FDs+1 {
		t.Errorf("fds %d after opening one, want %d", after.FDs, before.FDs+1)
	}
	byPID, err := processResources(strconv.Itoa(os.Getpid()))
	if err != nil || byPID.FDs < before.FDs || byPID.Goroutines != 0 {
		t.Errorf("by pid: %+v, %v; want the fds without goroutines (not visible from outside)", byPID, err)
	}
}
