package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// The load generator speaks just enough HTTP/1.1 over its own keep-alive
// connections to call the webhook: the request bytes are built once, and an answer
// is read by its status line, Content-Length and the dispatch_id in the body. This
// costs a fraction of net/http's client, which matters when the load generator
// shares two cores with the server it measures.

// webhookCall is the one request the load generator sends, over and over.
type webhookCall struct {
	addr string
	req  []byte
}

func newWebhookCall(addr, apiKey, eventID string) *webhookCall {
	body := `{"event_id":"` + eventID + `"}`
	req := "POST /public-api/integration/webhooks HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"User-Agent: devicehooks-bench\r\n" +
		"Content-Type: application/json\r\n" +
		"X-Webhook-Apikey: " + apiKey + "\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	return &webhookCall{addr: addr, req: []byte(req)}
}

// conn is one keep-alive connection of the load generator.
type conn struct {
	call *webhookCall
	c    net.Conn
	r    *bufio.Reader
	body []byte
}

// do sends the call and returns the status and the answer's dispatch_id.
func (k *conn) do() (status int, dispatchID string, err error) {
	if k.c == nil {
		c, err := net.DialTimeout("tcp", k.call.addr, 5*time.Second)
		if err != nil {
			return 0, "", err
		}
		k.c, k.r = c, bufio.NewReaderSize(c, 4096)
	}
	_ = k.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := k.c.Write(k.call.req); err != nil {
		k.close()
		return 0, "", err
	}
	status, keep, err := k.readAnswer()
	if err != nil {
		k.close()
		return 0, "", err
	}
	if !keep {
		k.close()
	}
	if status == 200 {
		dispatchID = jsonField(k.body, `"dispatch_id":"`)
	}
	return status, dispatchID, nil
}

// readAnswer reads one response into k.body.
func (k *conn) readAnswer() (status int, keep bool, err error) {
	line, err := k.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bench: bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bench: bad status line %q", line)
	}
	keep = true
	length, chunked := -1, false
	for {
		h, err := k.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("bench: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	k.body = k.body[:0]
	switch {
	case chunked:
		return status, keep, k.readChunked()
	case length >= 0:
		if cap(k.body) < length {
			k.body = make([]byte, length)
		}
		k.body = k.body[:length]
		_, err = io.ReadFull(k.r, k.body)
		return status, keep, err
	}
	return status, false, errors.New("bench: answer without a length")
}

func (k *conn) readChunked() error {
	for {
		line, err := k.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(line), 16, 32)
		if err != nil {
			return fmt.Errorf("bench: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers up to the blank line
				t, err := k.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		start := len(k.body)
		k.body = append(k.body, make([]byte, n)...)
		if _, err := io.ReadFull(k.r, k.body[start:]); err != nil {
			return err
		}
		if _, err := k.r.Discard(2); err != nil { // CRLF
			return err
		}
	}
}

func (k *conn) close() {
	if k.c != nil {
		_ = k.c.Close()
		k.c, k.r = nil, nil
	}
}

// jsonField returns the string value after prefix in a flat JSON body, or "".
func jsonField(body []byte, prefix string) string {
	i := bytes.Index(body, []byte(prefix))
	if i < 0 {
		return ""
	}
	rest := body[i+len(prefix):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// sample is one measured webhook call.
type sample struct {
	dispatchID string
	start      time.Time // when the call was sent, or (open loop) was due
	end        time.Time // when its answer was read
}

// loadResult is what one load phase measured, over its measurement window only.
type loadResult struct {
	window   time.Duration
	samples  []sample // accepted calls (200)
	statuses map[int]int
	errors   int
	firstErr string
	unsent   int // open loop: calls that were due but never sent before the phase ended
}

// collector gathers the workers' results.
type collector struct {
	mu sync.Mutex
	loadResult
}

func (c *collector) add(local *loadResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, local.samples...)
	for s, n := range local.statuses {
		c.statuses[s] += n
	}
	c.errors += local.errors
	c.unsent += local.unsent
	if c.firstErr == "" {
		c.firstErr = local.firstErr
	}
}

// record notes one call in a worker's local result.
func (l *loadResult) record(status int, id string, err error, start, end time.Time) {
	switch {
	case err != nil:
		l.errors++
		if l.firstErr == "" {
			l.firstErr = err.Error()
		}
	default:
		l.statuses[status]++
		if status == 200 {
			l.samples = append(l.samples, sample{dispatchID: id, start: start, end: end})
		}
	}
}

// closedLoop runs conns workers that each send the next call as soon as the last
// one is answered, until to; calls that start within [from, to) are recorded.
func closedLoop(ctx context.Context, call *webhookCall, conns int, from, to time.Time) *loadResult {
	col := &collector{loadResult: loadResult{window: to.Sub(from), statuses: map[int]int{}}}
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			k := &conn{call: call}
			defer k.close()
			local := &loadResult{statuses: map[int]int{}}
			for ctx.Err() == nil {
				start := time.Now()
				if !start.Before(to) {
					break
				}
				status, id, err := k.do()
				if !start.Before(from) {
					local.record(status, id, err, start, time.Now())
				}
				if err != nil {
					time.Sleep(5 * time.Millisecond) // don't spin while the server is away
				}
			}
			col.add(local)
		})
	}
	wg.Wait()
	return &col.loadResult
}

// openLoop sends calls at a constant rate from t0 until to, whatever the answers
// take, with up to conns calls in flight. A call's latency counts from when it was
// due, so a server that falls behind is charged for the wait too (no coordinated
// omission). Calls due within [from, to) are recorded.
func openLoop(ctx context.Context, call *webhookCall, conns int, rate float64, t0, from, to time.Time) *loadResult {
	col := &collector{loadResult: loadResult{window: to.Sub(from), statuses: map[int]int{}}}
	due := make(chan time.Time, 1<<20)
	drainBy := to.Add(10 * time.Second)

	go func() {
		defer close(due)
		interval := float64(time.Second) / rate
		for i := 0; ctx.Err() == nil; {
			now := time.Now()
			for {
				at := t0.Add(time.Duration(float64(i) * interval))
				if at.After(now) {
					break
				}
				if !at.Before(to) {
					return
				}
				select {
				case due <- at:
				default: // a million calls behind: the phase has failed anyway
				}
				i++
			}
			next := t0.Add(time.Duration(float64(i) * interval))
			time.Sleep(time.Until(next))
		}
	}()

	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			k := &conn{call: call}
			defer k.close()
			local := &loadResult{statuses: map[int]int{}}
			for at := range due {
				if time.Now().After(drainBy) || ctx.Err() != nil {
					if !at.Before(from) {
						local.unsent++
					}
					continue
				}
				status, id, err := k.do()
				if !at.Before(from) {
					local.record(status, id, err, at, time.Now())
				}
			}
			col.add(local)
		})
	}
	wg.Wait()
	return &col.loadResult
}
