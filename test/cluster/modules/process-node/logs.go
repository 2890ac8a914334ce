package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
)

type logOptions = api.ContainerLogOpts
type readCloser = io.ReadCloser

type logLine struct {
	at   time.Time
	text string
	full bool
}

func parseLogLine(s string) (logLine, bool) {
	parts := strings.SplitN(s, " ", 4)
	if len(parts) < 3 {
		return logLine{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, parts[0])
	if err != nil {
		return logLine{}, false
	}
	text := ""
	if len(parts) == 4 {
		text = parts[3]
	}
	return logLine{at: at, text: text, full: parts[2] == "F"}, true
}

func readLogLines(path string) []logLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		if l, ok := parseLogLine(sc.Text()); ok {
			out = append(out, l)
		}
	}
	return out
}

func formatLine(l logLine, timestamps bool) string {
	nl := "\n"
	if !l.full {
		nl = ""
	}
	if timestamps {
		return l.at.Format(time.RFC3339Nano) + " " + l.text + nl
	}
	return l.text + nl
}

// readLogs serves kubectl logs: --previous, --tail, --since/--since-time, --timestamps, --limit-bytes, -f.
func (c *containerRuntime) readLogs(ctx context.Context, opts logOptions) (io.ReadCloser, error) {
	c.pod.mu.Lock()
	restart := c.restartCount
	running := c.runningSince != nil
	exitCh := c.exitCh
	hasPrevious := c.lastTerminated != nil || (c.terminated != nil && restart > 0)
	c.pod.mu.Unlock()
	if opts.Previous {
		if !hasPrevious || restart == 0 {
			return nil, fmt.Errorf("previous terminated container %q in pod %q not found", c.spec.Name, c.pod.pod.Name)
		}
		restart--
		running = false
	}
	path := c.logPath(restart)
	lines := readLogLines(path)
	var since time.Time
	if opts.SinceSeconds > 0 {
		since = time.Now().Add(-time.Duration(opts.SinceSeconds) * time.Second)
	}
	if !opts.SinceTime.IsZero() {
		since = opts.SinceTime
	}
	if !since.IsZero() {
		kept := lines[:0]
		for _, l := range lines {
			if !l.at.Before(since) {
				kept = append(kept, l)
			}
		}
		lines = kept
	}
	if opts.Tail > 0 && len(lines) > opts.Tail {
		lines = lines[len(lines)-opts.Tail:]
	}
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(formatLine(l, opts.Timestamps))
	}
	if !opts.Follow || !running || exitCh == nil {
		out := buf.Bytes()
		if opts.LimitBytes > 0 && len(out) > opts.LimitBytes {
			out = out[:opts.LimitBytes]
		}
		return io.NopCloser(bytes.NewReader(out)), nil
	}
	// -f: what is there, then new lines as they are written, until the container exits.
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		written := 0
		limit := opts.LimitBytes
		write := func(b []byte) bool {
			if limit > 0 && written+len(b) > limit {
				b = b[:limit-written]
			}
			n, err := pw.Write(b)
			written += n
			return err == nil && (limit == 0 || written < limit)
		}
		if !write(buf.Bytes()) {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		// Skip what was already sent: everything up to the current size.
		st, _ := f.Stat()
		if _, err := f.Seek(st.Size(), io.SeekStart); err != nil {
			return
		}
		r := bufio.NewReader(f)
		var pending string
		exited := false
		for {
			chunk, err := r.ReadString('\n')
			pending += chunk
			if err == nil {
				if l, ok := parseLogLine(strings.TrimSuffix(pending, "\n")); ok {
					if !write([]byte(formatLine(l, opts.Timestamps))) {
						return
					}
				}
				pending = ""
				continue
			}
			if exited {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-exitCh:
				exited = true // one more pass for the last lines
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return pr, nil
}
