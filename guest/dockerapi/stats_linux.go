package dockerapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// statsInterval is how often a stats stream samples, as Docker's.
const statsInterval = time.Second

// containerStats answers GET /containers/{id}/stats: a stream of samples
// a second apart (stream=1, the default), one sample with the previous
// one a second before for CPU rates (stream=0), or one sample at once
// (one-shot=1).
func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	first, err := s.statsSample(id, nil)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	stream := q.Get("stream") == "" || boolParam(r, "stream")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(flushing(w))
	if !stream && boolParam(r, "one-shot") {
		return jsonEncode(w, first)
	}
	prev := first
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	if stream {
		if err := enc.Encode(first); err != nil {
			return errWritten
		}
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-tick.C:
		}
		next, err := s.statsSample(id, &prev)
		if err != nil {
			return errWritten // removed meanwhile: the stream ends
		}
		if err := enc.Encode(next); err != nil || !stream {
			return nil
		}
		prev = next
	}
}

// statsSample reads one sample; prev, when set, becomes its "pre" part.
func (s *Server) statsSample(id string, prev *container.StatsResponse) (container.StatsResponse, error) {
	st, err := s.eng.Stats(id)
	if err != nil {
		return container.StatsResponse{}, err
	}
	out := container.StatsResponse{ID: st.ID, Name: "/" + st.Name, OSType: "linux", Read: time.Now()}
	if prev != nil {
		out.PreRead, out.PreCPUStats = prev.Read, prev.CPUStats
	}
	if !st.Running {
		return out, nil
	}
	out.Read = st.Read
	out.CPUStats = container.CPUStats{
		CPUUsage:    container.CPUUsage{TotalUsage: uint64(st.CPUUsage)},
		SystemUsage: systemCPUUsage(),
		OnlineCPUs:  uint32(runtime.NumCPU()),
	}
	limit := st.MemoryLimit
	if limit == 0 {
		limit = memTotal()
	}
	out.MemoryStats = container.MemoryStats{
		Usage: uint64(st.MemoryUsage),
		Limit: uint64(limit),
		Stats: map[string]uint64{"inactive_file": uint64(st.MemoryInactiveFile)},
	}
	out.PidsStats = container.PidsStats{Current: uint64(st.Pids), Limit: uint64(st.PidsLimit)}
	out.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{
		{Op: "read", Value: uint64(st.IOReadBytes)}, {Op: "write", Value: uint64(st.IOWriteBytes)},
	}
	out.Networks = map[string]container.NetworkStats{}
	for name, n := range st.Networks {
		out.Networks[name] = container.NetworkStats{
			RxBytes: n.RxBytes, RxPackets: n.RxPackets, RxErrors: n.RxErrors, RxDropped: n.RxDropped,
			TxBytes: n.TxBytes, TxPackets: n.TxPackets, TxErrors: n.TxErrors, TxDropped: n.TxDropped,
		}
	}
	return out, nil
}

// systemCPUUsage is the machine's CPU time in nanoseconds since boot, all
// CPUs and states, as the CLI's CPU percentage expects (from /proc/stat).
func systemCPUUsage() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 8 || fields[0] != "cpu" {
			continue
		}
		var ticks uint64
		for _, v := range fields[1:8] {
			n, _ := strconv.ParseUint(v, 10, 64)
			ticks += n
		}
		return ticks * (uint64(time.Second) / clockTicks)
	}
	return 0
}

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/PID/stat: 100
// on every Linux architecture vmbox runs on.
const clockTicks = 100

// containerTop answers GET /containers/{id}/top in the columns of ps -ef.
func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) error {
	if a := r.URL.Query().Get("ps_args"); a != "" && a != "-ef" {
		return fmt.Errorf("%w: ps_args %q: only the default (ps -ef columns) is supported", errBadRequest, a)
	}
	id := r.PathValue("id")
	pids, err := s.eng.Top(id)
	if err != nil {
		return &apiError{code: http.StatusConflict, msg: "container " + id + " is not running"}
	}
	resp := container.TopResponse{Titles: []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}, Processes: [][]string{}}
	boot := bootTime()
	for _, pid := range pids {
		if row, ok := psRow(pid, boot); ok {
			resp.Processes = append(resp.Processes, row)
		}
	}
	return writeJSON(w, http.StatusOK, resp)
}

// psRow is one process in ps -ef's columns, read from /proc.
func psRow(pid int, boot time.Time) ([]string, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, false
	}
	// The command name is in parentheses and may hold spaces.
	end := strings.LastIndexByte(string(stat), ')')
	start := strings.IndexByte(string(stat), '(')
	if end < 0 || start < 0 {
		return nil, false
	}
	comm := string(stat[start+1 : end])
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 20 {
		return nil, false
	}
	num := func(i int) uint64 { n, _ := strconv.ParseUint(f[i], 10, 64); return n }
	// f[0] is the state; the fields count from ppid (4th of stat) at f[1].
	ppid, tty := f[1], num(4)
	cpu := time.Duration(num(11)+num(12)) * (time.Second / clockTicks)
	started := boot.Add(time.Duration(num(19)) * (time.Second / clockTicks))
	uid := "?"
	if b, err := os.ReadFile(dir + "/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if fs := strings.Fields(v); len(fs) > 0 {
					uid = fs[0]
				}
			}
		}
	}
	cmd := "[" + comm + "]"
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil && len(b) > 0 {
		cmd = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	}
	ttyName := "?"
	if tty != 0 {
		ttyName = fmt.Sprintf("pts/%d", unix.Minor(tty))
	}
	stime := started.Format("15:04")
	if time.Since(started) > 24*time.Hour {
		stime = started.Format("Jan02")
	}
	secs := int(cpu.Seconds())
	return []string{uid, strconv.Itoa(pid), ppid, "0", stime, ttyName, fmt.Sprintf("%02d:%02d:%02d", secs/3600, secs/60%60, secs%60), cmd}, true
}

func bootTime() time.Time {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return time.Now()
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}
