package main

// CPU and memory of processes, from /proc (Linux).

import (
	"bytes"
	"context"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicksPerSec is USER_HZ, the unit of /proc/<pid>/stat and /proc/stat.
const clockTicksPerSec = 100

// cpuUsage is CPU seconds spent during a phase, by process.
type cpuUsage struct {
	WallSec    float64 `json:"wallSec"`
	ServiceSec float64 `json:"serviceSec,omitempty"`
	RedisSec   float64 `json:"redisSec"`
	BenchSec   float64 `json:"benchSec"` // load generator + receiver (+ asynq in the ceiling phase)
	// From /proc/stat, all CPUs: UserSysSec is user+nice+system time,
	// IrqSec interrupt and softirq time (loopback networking is mostly
	// here), StealSec time the hypervisor gave to someone else. OtherSec is
	// UserSysSec+IrqSec minus the three processes above (whose system time
	// includes the softirq work done for them): CPU used by other processes
	// on the machine. Much of it means a disturbed run.
	UserSysSec float64 `json:"userSysSec"`
	OtherSec   float64 `json:"otherSec"`
	IrqSec     float64 `json:"irqSec"`
	StealSec   float64 `json:"stealSec"`
	LoadAvg1   float64 `json:"loadAvg1AtEnd"`
}

type cpuSnap struct {
	at               time.Time
	service, redis   float64
	bench            float64
	machine          procStat
	hasService, hasR bool
}

// snapCPU reads the CPU seconds used so far by the service (pid, if not 0,
// from /proc), Redis (INFO cpu) and this process (getrusage).
func snapCPU(ctx context.Context, rs *benchRedis, pid int) cpuSnap {
	s := cpuSnap{at: time.Now(), machine: readProcStat()}
	if pid > 0 {
		s.service, s.hasService = procCPUSeconds(pid)
	}
	s.redis, s.hasR = rs.infoCPUSeconds(ctx)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return s
}

func (s cpuSnap) since(p cpuSnap) cpuUsage {
	round := func(v float64) float64 { return math.Round(v*100) / 100 }
	c := cpuUsage{WallSec: round(s.at.Sub(p.at).Seconds()), BenchSec: round(s.bench - p.bench),
		UserSysSec: round(s.machine.userSys - p.machine.userSys), IrqSec: round(s.machine.irq - p.machine.irq),
		StealSec: round(s.machine.steal - p.machine.steal), LoadAvg1: loadAvg1()}
	if s.hasService && p.hasService {
		c.ServiceSec = round(s.service - p.service)
	}
	if s.hasR && p.hasR {
		c.RedisSec = round(s.redis - p.redis)
	}
	// A process's system time includes the softirq time spent on its
	// behalf, which /proc/stat counts as softirq, not system.
	c.OtherSec = round(c.UserSysSec + c.IrqSec - c.ServiceSec - c.RedisSec - c.BenchSec)
	return c
}

// procStat is the CPU time of all CPUs from /proc/stat's cpu line.
type procStat struct{ userSys, irq, steal float64 }

func readProcStat() procStat {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return procStat{}
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return procStat{}
	}
	v := func(i int) float64 { n, _ := strconv.ParseFloat(f[i], 64); return n / clockTicksPerSec }
	// user nice system idle iowait irq softirq steal
	return procStat{userSys: v(1) + v(2) + v(3), irq: v(6) + v(7), steal: v(8)}
}

func loadAvg1() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// procCPUSeconds is utime+stime of process pid, all its threads.
func procCPUSeconds(pid int) (float64, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (ut + st) / clockTicksPerSec, true
}

// ---------------------------------------------------------------- RSS

// rssSampler samples a process's VmRSS every 100 ms until stopped.
type rssSampler struct {
	stopCh  chan struct{}
	done    chan struct{}
	peakKB  int64
	samples int
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := readStatusKB(pid, "VmRSS:"); kb > 0 {
				s.peakKB = max(s.peakKB, kb)
				s.samples++
			}
			select {
			case <-s.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak in MiB and the sample count.
// It may be called more than once.
func (s *rssSampler) stop() (float64, int) {
	select {
	case <-s.stopCh:
	default:
		close(s.stopCh)
	}
	<-s.done
	return math.Round(float64(s.peakKB)/1024*10) / 10, s.samples
}

func readStatusKB(pid int, field string) int64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

func readRSSMiB(pid int, field string) float64 {
	return math.Round(float64(readStatusKB(pid, field))/1024*10) / 10
}
