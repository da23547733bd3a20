package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// parseSize reads sizes like "2GiB", "512m", "100G", "1073741824" (bytes
// when no unit is given and defUnit is "", else defUnit). Units are binary,
// as Docker's and Lima's are.
func parseSize(s, defUnit string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty size")
	}
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if unit == "" {
		unit = strings.ToLower(defUnit)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a positive size")
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
		"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (use b, k, m, g or t)", unit)
	}
	return int64(n * mult), nil
}

func formatMiB(mib int) string {
	if mib%1024 == 0 {
		return fmt.Sprintf("%dGiB", mib/1024)
	}
	return fmt.Sprintf("%dMiB", mib)
}

func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.3g%cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows a long wait: a live line on a terminal, plain lines otherwise.
type progress struct {
	w     io.Writer
	what  string
	tty   bool
	shown bool
	last  time.Time
}

func newProgress(w io.Writer, what string) *progress {
	p := &progress{w: w, what: what, tty: isTerminal(w)}
	if !p.tty {
		fmt.Fprintln(w, what+"...")
	}
	return p
}

func (p *progress) update(elapsed time.Duration) {
	if !p.tty || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.shown = true
	fmt.Fprintf(p.w, "\r%s... %.1fs", p.what, elapsed.Seconds())
}

func (p *progress) clear() {
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progress) finish(msg string) {
	p.clear()
	fmt.Fprintln(p.w, msg)
}

func (p *progress) fail() { p.clear() }
func (p *progress) done() { p.clear() }
