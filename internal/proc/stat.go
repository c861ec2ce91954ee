package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is what /proc/PID/stat says about a process.
type Stat struct {
	// State is R, S, D, T, Z (zombie: dead, not yet reaped), ...
	State byte
	PPID  int
	// StartTime is when the process started, in clock ticks since boot.
	// With the pid it names one process until the machine restarts: a
	// pid reused by another process comes with another start time, and
	// exec (nsenter running its command) keeps it.
	StartTime uint64
	// UserTicks and SystemTicks are the CPU time the process used, in
	// clock ticks (ClockTicksPerSecond).
	UserTicks, SystemTicks uint64
}

// ClockTicksPerSecond is USER_HZ, the unit of /proc's CPU times: 100 on
// every Linux architecture Go supports.
const ClockTicksPerSecond = 100

// ReadStat reads /proc/PID/stat, whose second field (the command name, in
// parentheses) may itself hold spaces and parentheses.
func ReadStat(pid int) (Stat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, fmt.Errorf("read %s: %w", path, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("parse %s: no command name", path)
	}
	// Fields after the name, numbered from 3 as in proc(5): state (3),
	// ppid (4), ..., starttime (22).
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("parse %s: %d fields after the command name", path, len(f))
	}
	st := Stat{State: f[0][0]}
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return Stat{}, fmt.Errorf("parse %s: ppid: %w", path, err)
	}
	if st.StartTime, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse %s: starttime: %w", path, err)
	}
	// utime (14) and stime (15).
	if st.UserTicks, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse %s: utime: %w", path, err)
	}
	if st.SystemTicks, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse %s: stime: %w", path, err)
	}
	return st, nil
}

// BootID identifies this boot of the machine: start times count from it.
func BootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
