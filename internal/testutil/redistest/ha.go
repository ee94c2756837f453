package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name under which the sentinels of StartSentinel monitor the primary.
const SentinelMaster = "agentcost"

// SentinelSetup is a primary, one replica and three sentinels (quorum 2) on loopback, as a
// Sentinel-managed production Redis: when the primary dies, the sentinels promote the replica.
type SentinelSetup struct {
	// Primary and Replica are the data nodes as started; after a failover Replica is the primary.
	Primary, Replica *Server
	// Sentinels are the sentinels' host:port.
	Sentinels []string
	// MasterName is the monitored primary's name (SentinelMaster).
	MasterName string
	// Password is the data nodes' requirepass, SentinelPassword the sentinels' (none when empty).
	Password, SentinelPassword string
}

// data and sentinel return clients of a data node and of a sentinel with the setup's passwords.
func (s *SentinelSetup) data(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: s.Password, Protocol: 2, DisableIdentity: true})
}

func (s *SentinelSetup) sentinel(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: s.SentinelPassword, Protocol: 2, DisableIdentity: true})
}

// dataArgs returns the arguments of a data node of the setup: requirepass and masterauth.
func (s *SentinelSetup) dataArgs(dir string, port int, extra ...string) []string {
	if s.Password != "" {
		extra = append(extra, "--requirepass", s.Password, "--masterauth", s.Password)
	}
	return dataArgs(dir, port, extra...)
}

// Cluster is a Redis Cluster of three primaries (no replicas) on loopback.
type Cluster struct {
	// Nodes are the primaries.
	Nodes []*Server
}

// Addrs returns the nodes' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

func lookPath(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found in PATH: the Redis tests DID NOT RUN (install redis-server, e.g. apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return bin
}

// startProc runs bin with the arguments args returns for a free port, waits until it answers PING
// and stops it at test cleanup.
func startProc(tb testing.TB, bin string, args func(port int) []string) *Server {
	tb.Helper()
	return startProcOn(tb, bin, 0, "", args)
}

// startProcOn is startProc on port fixed (a free port when 0), authenticating its PING with
// password (none when empty).
func startProcOn(tb testing.TB, bin string, fixed int, password string, args func(port int) []string) *Server {
	tb.Helper()
	var lastErr error
	for range 3 {
		port, err := fixed, error(nil)
		if fixed == 0 {
			port, err = freePort()
		}
		if err != nil {
			lastErr = err
			continue
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, args(port)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			lastErr = err
			continue
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd}
		deadline := time.Now().Add(10 * time.Second)
		for lastErr = nil; ; {
			if ping(s.Addr, password) == nil {
				tb.Cleanup(s.Stop)
				return s
			}
			select {
			case <-exited:
				lastErr = fmt.Errorf("%s exited: %s", bin, bytes.TrimSpace(out.Bytes()))
			case <-time.After(20 * time.Millisecond):
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					<-exited
					lastErr = fmt.Errorf("%s on %s did not answer within 10s: %s", bin, s.Addr, bytes.TrimSpace(out.Bytes()))
				}
			}
			if lastErr != nil {
				break
			}
		}
	}
	tb.Fatalf("starting redis: %v", lastErr)
	return nil
}

func dataArgs(dir string, port int, extra ...string) []string {
	return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--loglevel", "warning", "--repl-diskless-sync-delay", "0"}, extra...)
}

// waitFor polls cond every 50ms until it returns nil, failing the test after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartSentinel starts a primary, a replica of it and three sentinels (redis-server --sentinel,
// quorum 2, down-after 1s) and waits until the sentinels know the replica and each other. It
// skips (or fails under CI=true) as Start does.
func StartSentinel(tb testing.TB) *SentinelSetup {
	tb.Helper()
	return StartSentinelWithPasswords(tb, "", "")
}

// StartSentinelWithPasswords is StartSentinel with requirepass password on the data nodes and
// sentinelPassword on the sentinels (none when empty), as a production setup.
func StartSentinelWithPasswords(tb testing.TB, password, sentinelPassword string) *SentinelSetup {
	tb.Helper()
	bin := lookPath(tb)
	ctx := context.Background()
	s := &SentinelSetup{MasterName: SentinelMaster, Password: password, SentinelPassword: sentinelPassword}
	primary := startProcOn(tb, bin, 0, password, func(p int) []string { return s.dataArgs(tb.TempDir(), p) })
	host, port, _ := net.SplitHostPort(primary.Addr)
	replica := startProcOn(tb, bin, 0, password, func(p int) []string { return s.dataArgs(tb.TempDir(), p, "--replicaof", host, port) })
	s.Primary, s.Replica = primary, replica
	waitFor(tb, 20*time.Second, "replica in sync", func() error {
		c := s.data(primary.Addr)
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("replication: %s", info)
		}
		return nil
	})
	for range 3 {
		dir := tb.TempDir()
		sn := startProcOn(tb, bin, 0, sentinelPassword, func(p int) []string {
			conf := filepath.Join(dir, "sentinel.conf")
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\n"+
				"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\nsentinel parallel-syncs %s 1\n",
				p, dir, SentinelMaster, host, port, SentinelMaster, SentinelMaster, SentinelMaster)
			if password != "" {
				text += fmt.Sprintf("sentinel auth-pass %s %s\n", SentinelMaster, password)
			}
			if sentinelPassword != "" {
				text += fmt.Sprintf("requirepass %s\n", sentinelPassword)
			}
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				tb.Fatal(err)
			}
			return []string{conf, "--sentinel", "--loglevel", "warning"}
		})
		s.Sentinels = append(s.Sentinels, sn.Addr)
	}
	for _, addr := range s.Sentinels {
		waitFor(tb, 30*time.Second, "sentinel "+addr+" knows the replica and the other sentinels", func() error {
			c := s.sentinel(addr)
			defer c.Close()
			m, err := c.Master(ctx, SentinelMaster).Result()
			if err != nil {
				return err
			}
			if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("master state %v", m)
			}
			return nil
		})
	}
	return s
}

// MasterAddr returns the primary's host:port as the first answering sentinel reports it.
func (s *SentinelSetup) MasterAddr() (string, error) {
	var lastErr error
	for _, addr := range s.Sentinels {
		c := s.sentinel(addr)
		v, err := c.GetMasterAddrByName(context.Background(), s.MasterName).Result()
		_ = c.Close()
		if err == nil && len(v) == 2 {
			return net.JoinHostPort(v[0], v[1]), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("no sentinel answered: %w", lastErr)
}

// RestartPrimaryAsReplica starts a new, empty redis-server on the killed primary's port as a
// replica of the promoted one (as a supervisor restarting the dead node would) and waits until it
// is in sync, so that writes waiting for one replica are acknowledged again.
func (s *SentinelSetup) RestartPrimaryAsReplica(tb testing.TB) {
	tb.Helper()
	s.Primary.Stop() // waits until the port is closed
	_, p, _ := net.SplitHostPort(s.Primary.Addr)
	port, _ := strconv.Atoi(p)
	host, rport, _ := net.SplitHostPort(s.Replica.Addr)
	dir := tb.TempDir()
	s.Primary = startProcOn(tb, lookPath(tb), port, s.Password, func(p int) []string { return s.dataArgs(dir, p, "--replicaof", host, rport) })
	waitFor(tb, 30*time.Second, "restarted node in sync", func() error {
		c := s.data(s.Replica.Addr)
		defer c.Close()
		info, err := c.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("replication: %s", info)
		}
		return nil
	})
}

// KillPrimary kills the started primary with SIGKILL (no shutdown, no last replication).
func (s *SentinelSetup) KillPrimary() error { return s.Primary.cmd.Process.Kill() }

// WaitPromoted waits until every sentinel reports the replica as the primary and the replica
// answers as a master, and returns how long that took from the call.
func (s *SentinelSetup) WaitPromoted(tb testing.TB, timeout time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	waitFor(tb, timeout, "sentinels promote the replica", func() error {
		for _, addr := range s.Sentinels {
			c := s.sentinel(addr)
			v, err := c.GetMasterAddrByName(context.Background(), s.MasterName).Result()
			_ = c.Close()
			if err != nil {
				return err
			}
			if got := net.JoinHostPort(v[0], v[1]); got != s.Replica.Addr {
				return fmt.Errorf("sentinel %s reports %s", addr, got)
			}
		}
		c := s.data(s.Replica.Addr)
		defer c.Close()
		info, err := c.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") {
			return fmt.Errorf("replica not yet master")
		}
		return nil
	})
	return time.Since(start)
}

// StartCluster starts three cluster-enabled redis-servers, joins them into one cluster with
// redis-cli --cluster create (no replicas) and waits until every node reports cluster_state:ok. It
// skips (or fails under CI=true) as Start does, also when redis-cli is missing.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bin := lookPath(tb)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		msg := "redis-cli not found in PATH: the Redis Cluster tests DID NOT RUN (install redis-tools)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	c := &Cluster{}
	for range 3 {
		dir := tb.TempDir()
		c.Nodes = append(c.Nodes, startProc(tb, bin, func(p int) []string {
			return dataArgs(dir, p, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "5000")
		}))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v: %s", err, out)
	}
	ctx := context.Background()
	for _, n := range c.Nodes {
		waitFor(tb, 30*time.Second, "cluster node "+n.Addr+" ready", func() error {
			rc := redis.NewClient(&redis.Options{Addr: n.Addr, Protocol: 2, DisableIdentity: true})
			defer rc.Close()
			info, err := rc.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("cluster info: %s", info)
			}
			return nil
		})
	}
	return c
}
