// Package redistest starts a real, throwaway redis-server for tests.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running redis-server owned by one test.
type Server struct {
	// Addr is the server's host:port on the loopback interface.
	Addr string

	cmd      *exec.Cmd
	stopOnce sync.Once
}

// Start runs redis-server on a free loopback port, without persistence, waits until it answers
// PING and stops it when the test ends. When redis-server is not installed the test is skipped, or
// fails when the environment variable CI is "true".
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWithPassword(tb, "")
}

// StartWithPassword is Start with requirepass set to password (none when empty): clients must
// AUTH, as against a production Redis.
func StartWithPassword(tb testing.TB, password string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found in PATH: the Redis tests DID NOT RUN (install redis-server, e.g. apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	var lastErr error
	for range 3 { // the free port can be taken between finding and binding it
		s, err := start(tb, bin, password)
		if err == nil {
			tb.Cleanup(s.Stop)
			return s
		}
		lastErr = err
	}
	tb.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

func start(tb testing.TB, bin, password string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", tb.TempDir(), "--loglevel", "warning")
	if password != "" {
		cmd.Args = append(cmd.Args, "--requirepass", password)
	}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr, password) == nil {
			return s, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("redis-server exited: %s", bytes.TrimSpace(out.Bytes()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("redis-server on %s did not answer within 10s: %s", s.Addr, bytes.TrimSpace(out.Bytes()))
		}
	}
}

// Pause stops the server's process (SIGSTOP): connections stay open and every command hangs, as in
// a network partition or a stalled host.
func (s *Server) Pause() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Stop kills the server; it is safe to call more than once and runs at test cleanup anyway.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		for range 500 { // wait until the port is closed
			c, err := net.DialTimeout("tcp", s.Addr, 10*time.Millisecond)
			if err != nil {
				return
			}
			_ = c.Close()
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func ping(addr, password string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password); err != nil {
			return err
		}
		if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
			return fmt.Errorf("AUTH: %q %v", line, err)
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}
