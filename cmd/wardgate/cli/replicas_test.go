package cli_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/bus"
	"github.com/wardgate/wardgate/fixtures/fleet"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/internal/natstest"
	"github.com/wardgate/wardgate/server"
	"github.com/wardgate/wardgate/store"
)

// wardgateBinary is the wardgate binary the replica tests run: $WARDGATE,
// or one built once for the test binary's run.
func wardgateBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WARDGATE"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wardgate-replicas-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "wardgate")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/wardgate/wardgate/cmd/wardgate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// replica is one `wardgate serve` process.
type replica struct {
	t     *testing.T
	bin   string
	args  []string
	cmd   *exec.Cmd
	url   string
	logs  *syncBuffer
	ended chan struct{}
}

// startReplica runs `wardgate serve` with args on a free loopback port and
// waits until it listens. The process is killed when the test ends.
func startReplica(t *testing.T, bin string, args ...string) *replica {
	t.Helper()
	r := &replica{t: t, bin: bin, args: args}
	r.start()
	return r
}

func (r *replica) start() {
	t := r.t
	t.Helper()
	r.logs = &syncBuffer{}
	r.cmd = exec.Command(r.bin, append([]string{"serve", "--listen", "127.0.0.1:0", "-o", "json"}, r.args...)...)
	r.cmd.Env = append(os.Environ(), "WARDGATE_KEY_PASSWORD=replica-test")
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := r.cmd
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addr := make(chan string, 1)
	r.ended = make(chan struct{})
	logs, ended := r.logs, r.ended
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "serving" {
				select {
				case addr <- l.Addr:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case a := <-addr:
		r.url = "http://" + a
	case <-ended:
		t.Fatalf("wardgate serve %v ended before listening:\n%s", r.args, r.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("wardgate serve %v not listening after 60 s:\n%s", r.args, r.logs.String())
	}
}

// kill9 kills the process (SIGKILL: nothing is flushed or closed).
func (r *replica) kill9() {
	if err := r.cmd.Process.Kill(); err != nil {
		r.t.Fatal(err)
	}
	<-r.ended
}

// call sends a JSON request and decodes the JSON answer into out (when
// set); a transport error (a killed replica) is returned.
func call(method, url, tok string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, fmt.Errorf("%d %s: %w", res.StatusCode, b, err)
		}
	}
	return res.StatusCode, nil
}

// replicaSetup is what the replicas of one test share: the store (a fresh
// schema), the trust configuration, the service key (made by the first
// replica), the rollout membership key, and tokens.
type replicaSetup struct {
	dsn, trust, bin string
	states          []string
	tokens          map[server.Role]string
}

func newReplicaSetup(t *testing.T, n int, trustYAML string, fleet bool) *replicaSetup {
	t.Helper()
	s := &replicaSetup{dsn: postgresStore(t), bin: wardgateBinary(t), tokens: map[server.Role]string{}}
	abs, err := filepath.Abs("../../../fixtures")
	if err != nil {
		t.Fatal(err)
	}
	s.trust = filepath.Join(t.TempDir(), "trust.yaml")
	if err := os.WriteFile(s.trust, []byte(strings.ReplaceAll(trustYAML, "testdata/", abs+"/testdata/")), 0o600); err != nil {
		t.Fatal(err)
	}
	for range n {
		dir := t.TempDir()
		if fleet {
			for _, f := range []string{"inventory.json", "config.json"} {
				b, err := os.ReadFile(filepath.Join(abs, "fleet", "testdata", f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		s.states = append(s.states, dir)
	}
	st, err := store.Open(t.Context(), s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	toks := server.NewTokens(st)
	for _, role := range []server.Role{server.RoleCI, server.RoleUpdateServer, server.RoleSensor, server.RoleAuditor, server.RoleAdmin} {
		sec, err := toks.Create(t.Context(), role, string(role))
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[role] = string(sec)
	}
	return s
}

// start starts replica i (with extra flags); the first one makes the service key and the
// rollout key, which the others are given (replicas share one log, so
// one key, and one ring membership).
func (s *replicaSetup) start(t *testing.T, i int, extra ...string) *replica {
	t.Helper()
	args := append([]string{"--state", s.states[i], "--store", s.dsn, "--config", s.trust, "--no-scan"}, extra...)
	key := filepath.Join(s.states[0], "signing.key")
	if i > 0 {
		args = append(args, "--signing-key", key)
		rk, err := os.ReadFile(filepath.Join(s.states[0], "rollout.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.states[i], "rollout.key"), rk, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return startReplica(t, s.bin, args...)
}

// evaluate posts the pump 2.4.0 update to r and returns its digest.
func (s *replicaSetup) evaluate(t *testing.T, r *replica) string {
	t.Helper()
	code, body := postUpdate(t, r.url, s.tokens[server.RoleCI])
	var u server.UpdateResponse
	if err := json.Unmarshal([]byte(body), &u); code != 200 || err != nil || !u.Allow {
		t.Fatalf("evaluate: %d %s", code, body)
	}
	return u.Digest
}

func (s *replicaSetup) admit(r *replica, digest, device string) (server.AdmissionResponse, int, error) {
	var a server.AdmissionResponse
	code, err := call("POST", r.url+"/v1/admissions", s.tokens[server.RoleUpdateServer],
		map[string]any{"digest": digest, "device": map[string]string{"id": device, "class": "infusion-pump", "installedVersion": "2.3.0"}}, &a)
	return a, code, err
}

func (s *replicaSetup) checkpoint(t *testing.T, r *replica) server.CheckpointResponse {
	t.Helper()
	var cp server.CheckpointResponse
	if code, err := call("GET", r.url+"/v1/log/checkpoint", s.tokens[server.RoleAuditor], nil, &cp); code != 200 || err != nil {
		t.Fatalf("checkpoint: %d %v", code, err)
	}
	return cp
}

// install3CX records in the store the fleet fixture's installations, with
// the 3CX-like update's installers relabelled as installers of digest.
func (s *replicaSetup) install3CX(t *testing.T, digest string) {
	t.Helper()
	ins, err := os.ReadFile("../../../fixtures/fleet/testdata/installations.json")
	if err != nil {
		t.Fatal(err)
	}
	compromised := fleet.Pump3CX.Digest()
	var all []egress.Installation
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(ins), compromised, digest)), &all); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.RecordInstallations(t.Context(), all); err != nil {
		t.Fatal(err)
	}
}

// Three `wardgate serve` processes on one PostgreSQL, admissions spread
// over them, one killed with SIGKILL in the middle: every admission
// answered allow is in the log exactly once, at the index its answer
// gave; the checkpoints the survivors handed out are all consistent (a
// consistency proof exists between any two); a pack exported from the
// store verifies, with a consistency proof from the oldest of them; the
// killed replica, restarted, continues the one log.
func TestReplicasOneLog(t *testing.T) {
	b, err := os.ReadFile("../../../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := newReplicaSetup(t, 3, string(b), false)
	rs := []*replica{s.start(t, 0)}
	rs = append(rs, s.start(t, 1), s.start(t, 2))
	digest := s.evaluate(t, rs[0])

	const admissions = 90
	type answer struct {
		device string
		index  uint64
	}
	var (
		mu      sync.Mutex
		allowed []answer
		lost    []string // sent to the killed replica, no answer
		cps     []server.CheckpointResponse
	)
	killed := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	work := make(chan int)
	for w := range 6 {
		wg.Go(func() {
			for i := range work {
				r := rs[i%3]
				dev := fmt.Sprintf("pump-%03d", i)
				a, code, err := s.admit(r, digest, dev)
				mu.Lock()
				switch {
				case err != nil && r == rs[2]:
					lost = append(lost, dev)
				case err != nil || code != 200 || !a.Allow || a.LogEntry == nil:
					t.Errorf("worker %d, %s on replica %d: %d %v %+v", w, dev, i%3, code, err, a.Decision)
				default:
					allowed = append(allowed, answer{dev, a.LogEntry.Index})
				}
				mu.Unlock()
			}
		})
	}
	for i := range admissions {
		if i == admissions/3 {
			killOnce.Do(func() { rs[2].kill9(); close(killed) })
		}
		if i%10 == 0 {
			for _, r := range rs[:2] {
				cp := s.checkpoint(t, r)
				mu.Lock()
				cps = append(cps, cp)
				mu.Unlock()
			}
		}
		work <- i
	}
	close(work)
	wg.Wait()
	<-killed
	for _, r := range rs[:2] {
		cps = append(cps, s.checkpoint(t, r))
	}
	if len(allowed) < admissions*2/3 {
		t.Fatalf("%d admissions allowed of %d (%d lost to the killed replica)", len(allowed), admissions, len(lost))
	}

	// The log, as stored: every allowed admission exactly once, at its
	// index; a gap-free sequence.
	st, err := store.Open(t.Context(), s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	byDevice := map[string][]uint64{}
	var n uint64
	if err := st.LogEntries(t.Context(), store.LogFilter{}, func(e store.LogEntry) error {
		if e.Index != n {
			return fmt.Errorf("entry %d where %d was due", e.Index, n)
		}
		n++
		if e.Device != "" {
			byDevice[e.Device] = append(byDevice[e.Device], e.Index)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, a := range allowed {
		if got := byDevice[a.device]; !slices.Equal(got, []uint64{a.index}) {
			t.Errorf("%s answered allow at %d; the log has it at %v", a.device, a.index, got)
		}
	}
	for _, d := range lost {
		if got := byDevice[d]; len(got) > 1 {
			t.Errorf("%s (no answer: replica killed) is in the log %d times", d, len(got))
		}
	}

	// Every checkpoint any survivor handed out is a prefix of the stored
	// tree, so a consistency proof exists between any two.
	t.Setenv(attest.PasswordEnv, "replica-test")
	signer, err := attest.LoadSigner(t.Context(), filepath.Join(s.states[0], gate.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := attest.OpenLog(t.Context(), st, signer, "")
	if err != nil {
		t.Fatal(err)
	}
	head := l.Checkpoint()
	slices.SortFunc(cps, func(a, b server.CheckpointResponse) int { return int(a.Size) - int(b.Size) })
	for i, c := range cps {
		cp, err := attest.ParseCheckpoint([]byte(c.Note), c.Origin, signer.Verifier())
		if err != nil {
			t.Fatalf("checkpoint %d: %v", i, err)
		}
		for _, later := range append(cps[i:], server.CheckpointResponse{Size: head.Size, Root: hex.EncodeToString(head.Root)}) {
			p, err := l.ConsistencyProof(t.Context(), cp.Size, later.Size)
			if err != nil {
				t.Fatal(err)
			}
			root2, _ := hex.DecodeString(later.Root)
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, later.Size, p, cp.Root, root2); err != nil {
				t.Fatalf("checkpoints of size %d and %d are not consistent: %v", cp.Size, later.Size, err)
			}
		}
	}

	// The killed replica, restarted on its state directory, continues the
	// one log: its checkpoint is the stored head, its next verdict the
	// next index.
	rs[2].start()
	if cp := s.checkpoint(t, rs[2]); cp.Size != head.Size || cp.Root != hex.EncodeToString(head.Root) {
		t.Fatalf("restarted replica's checkpoint %d %s, the stored head is %d %x", cp.Size, cp.Root, head.Size, head.Root)
	}
	a, code, err := s.admit(rs[2], digest, "pump-after-restart")
	if err != nil || code != 200 || !a.Allow || a.LogEntry == nil || a.LogEntry.Index != head.Size {
		t.Fatalf("admission on the restarted replica: %d %v %+v, want index %d", code, err, a.LogEntry, head.Size)
	}

	// A pack exported by the restarted replica (GET /v1/evidence: every
	// entry of the one log up to its checkpoint) verifies.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", rs[2].url+"/v1/evidence", nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens[server.RoleAuditor])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	packBytes, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("export: %d %s", res.StatusCode, packBytes)
	}
	pack := filepath.Join(t.TempDir(), "pack.tar.gz")
	if err := os.WriteFile(pack, packBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(s.bin, "attest", "verify", pack, "--key", filepath.Join(s.states[0], "signing.pub"), "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("wardgate attest verify: %v\n%s", err, out)
	}
	var v struct {
		TreeSize uint64 `json:"treeSize"`
		Entries  int    `json:"entries"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.TreeSize != head.Size+1 || v.Entries != int(head.Size+1) {
		t.Fatalf("verified pack: %s (%v), want %d entries", out, err, head.Size+1)
	}

	// The shared trust configuration changes and replica 0 alone is told
	// (SIGHUP): the others reload it too, and refuse the update evaluated
	// under the old one (stale-evaluation) from the bound on.
	tb, err := os.ReadFile(s.trust)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(tb), "device_classes: [infusion-pump]", "device_classes: [infusion-pump, lab-pump]", 1)
	if changed == string(tb) {
		t.Fatal("the trust configuration has no pump device classes to change")
	}
	if err := os.WriteFile(s.trust, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rs[0].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(rs[0].logs.String(), `"msg":"reloaded"`) {
		time.Sleep(20 * time.Millisecond)
	}
	t0 := time.Now()
	for i := 0; ; i++ {
		start := time.Now()
		a, code, err := s.admit(rs[1+i%2], digest, fmt.Sprintf("pump-reload-%d", i))
		stale := err == nil && code == 200 && !a.Allow && len(a.Decision.Violations) == 1 && strings.Contains(a.Decision.Violations[0].Message, "evaluated under")
		if !stale && start.Sub(t0) >= gate.DefaultReplicaBound {
			t.Fatalf("replica %d still admits under the old trust configuration %s after replica 0 reloaded: %d %v %+v", 1+i%2, start.Sub(t0), code, err, a.Decision)
		}
		if start.Sub(t0) > gate.DefaultReplicaBound+300*time.Millisecond {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A quarantine raised through one replica's telemetry, and rollout
// changes made on it (pause, abort), are honoured by another replica for
// every admission that starts more than the replica bound (2 s) after
// the first replica answered, although the other had the clean state and
// the open ring in its caches.
func TestReplicasFollowChanges(t *testing.T) {
	b, err := os.ReadFile("../../../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "        device_classes: [infusion-pump]\n", `        device_classes: [infusion-pump]
        rollout:
          rings:
            - {name: canary, share: 20%, soak: 48h, min_reporting: 2}
            - {name: broad, share: 100%}
`, 1)
	if y == string(b) {
		t.Fatal("fixtures/trust.yaml: no pump device_classes line to add rings under")
	}
	s := newReplicaSetup(t, 2, y, true)
	ra := s.start(t, 0)
	rb := s.start(t, 1)
	digest := s.evaluate(t, ra)
	var st server.UpdateState
	if code, err := call("GET", rb.url+"/v1/updates/"+digest, s.tokens[server.RoleAuditor], nil, &st); code != 200 || err != nil || len(st.Rollout) != 1 {
		t.Fatalf("update on B: %d %v %+v", code, err, st)
	}
	canary := st.Rollout[0].Rings[0].Devices
	if len(canary) < 2 {
		t.Fatalf("canary ring %v: want two devices", canary)
	}
	// B decides (and caches) with the ring open and the update clean.
	if a, code, err := s.admit(rb, digest, canary[0]); err != nil || code != 200 || !a.Allow {
		t.Fatalf("canary on B: %d %v %+v", code, err, a.Decision)
	}
	bound := gate.DefaultReplicaBound

	// within polls B after A answered at t0: f says whether B honours the
	// change; every try started bound after t0 or later must.
	within := func(what string, t0 time.Time, f func() (bool, string)) {
		t.Helper()
		var first time.Duration = -1
		for {
			start := time.Now()
			ok, got := f()
			if ok && first < 0 {
				first = start.Sub(t0)
			}
			if !ok && start.Sub(t0) >= bound {
				t.Fatalf("%s: B does not honour it %s after A answered (bound %s): %s", what, start.Sub(t0).Round(time.Millisecond), bound, got)
			}
			if start.Sub(t0) > bound+500*time.Millisecond {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: honoured on B from %s after A answered", what, first.Round(time.Millisecond))
	}
	rolloutOn := func(r *replica, action string) time.Time {
		t.Helper()
		var ch map[string]any
		code, err := call("POST", r.url+"/v1/updates/"+digest+"/rollout", s.tokens[server.RoleAdmin],
			map[string]string{"class": "infusion-pump", "action": action, "reason": "replica test"}, &ch)
		if code != 200 || err != nil {
			t.Fatalf("%s on A: %d %v %v", action, code, err, ch)
		}
		return time.Now()
	}

	// Paused on A: B shows it paused.
	t0 := rolloutOn(ra, "pause")
	within("pause", t0, func() (bool, string) {
		var st server.UpdateState
		if code, err := call("GET", rb.url+"/v1/updates/"+digest, s.tokens[server.RoleAuditor], nil, &st); code != 200 || err != nil || len(st.Rollout) != 1 {
			return false, fmt.Sprintf("%d %v", code, err)
		}
		return st.Rollout[0].Status == "paused", st.Rollout[0].Status
	})
	// Aborted on A: B holds even the canary ring.
	t0 = rolloutOn(ra, "abort")
	within("abort", t0, func() (bool, string) {
		a, code, err := s.admit(rb, digest, canary[1])
		return err == nil && code == 200 && !a.Allow && a.Hold != nil && a.Hold.Status == "stopped", fmt.Sprintf("%d %v allow=%v %+v", code, err, a.Allow, a.Decision.Violations)
	})

	// The fleet fixture's 3CX-like installers, relabelled as installers of
	// this update, and their telemetry posted to A: A quarantines it, and
	// B denies it (quarantined) from the bound on.
	s.install3CX(t, digest)
	tel, err := os.ReadFile("../../../fixtures/fleet/testdata/defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", ra.url+"/v1/telemetry", bytes.NewReader(tel))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+s.tokens[server.RoleSensor])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t0 = time.Now()
	if res.StatusCode != 200 {
		t.Fatalf("telemetry on A: %d %s", res.StatusCode, body)
	}
	if a, _, err := s.admit(ra, digest, canary[0]); err != nil || !slices.Equal(codes(a), []string{"quarantined"}) {
		t.Fatalf("A after its telemetry: %v %+v", err, a.Decision)
	}
	within("quarantine", t0, func() (bool, string) {
		a, code, err := s.admit(rb, digest, canary[0])
		// Not allowed, and for the quarantine (the hold of the stopped
		// rollout applies to allows only).
		return err == nil && code == 200 && !a.Allow && slices.Equal(codes(a), []string{"quarantined"}), fmt.Sprintf("%d %v %+v", code, err, a.Decision.Violations)
	})
	m, err := http.Get(rb.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(m.Body)
	m.Body.Close()
	for _, want := range []string{"wardgate_replica_caches_bypassed 0", "wardgate_replica_lag_bound_seconds 2\n", "wardgate_replica_resets_total 1\n"} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("B's metrics lack %q", want)
		}
	}
}

func codes(a server.AdmissionResponse) []string {
	out := []string{}
	for _, v := range a.Decision.Violations {
		out = append(out, string(v.Code))
	}
	return out
}

// A quarantine raised from telemetry that sensors publish to NATS
// JetStream, consumed by replica A (`serve --telemetry`), stops admissions
// on replica B, which consumes nothing and had answered the update clean:
// B learns it through the store's change feed.
func TestReplicasBusQuarantine(t *testing.T) {
	b, err := os.ReadFile("../../../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := newReplicaSetup(t, 2, string(b), true)
	ns := natstest.Start(t)
	ra := s.start(t, 0, "--telemetry", ns.URL)
	rb := s.start(t, 1)
	digest := s.evaluate(t, rb)
	const device = "HOSP-IOT-PUMP-30"
	if a, code, err := s.admit(rb, digest, device); err != nil || code != 200 || !a.Allow || a.RiskState != "clean" {
		t.Fatalf("B before telemetry: %d %v %+v", code, err, a)
	}
	// The fleet fixture's 3CX-like installers, relabelled as installers
	// of this update.
	s.install3CX(t, digest)
	// The sensors publish the fixture's telemetry in batches of lines (a
	// message is at most 1 MiB), to the stream A's consumer made.
	nc, err := bus.Dial(ns.URL, "sensor")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	tel, err := os.ReadFile("../../../fixtures/fleet/testdata/defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(tel), "\n")
	for i := 0; i < len(lines); i += 2000 {
		if _, err := js.Publish(t.Context(), bus.Subject(egress.FormatDefenderJSON), []byte(strings.Join(lines[i:min(i+2000, len(lines))], ""))); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	t0 := time.Now()
	// A takes the telemetry from the bus, commits it and analyses it; B,
	// told by the feed, denies the update from then on. A generous bound:
	// the bus's ack is not the analysis (docs/serve.md, "Telemetry bus").
	for {
		a, code, err := s.admit(rb, digest, device)
		if err == nil && code == 200 && !a.Allow && slices.Equal(codes(a), []string{"quarantined"}) {
			t.Logf("B denies it quarantined %s after the last publish", time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("B 30 s after the telemetry was published: %d %v allow=%v %+v", code, err, a.Allow, a.Decision.Violations)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a, _, err := s.admit(ra, digest, device); err != nil || !slices.Equal(codes(a), []string{"quarantined"}) {
		t.Fatalf("A: %v %+v", err, a.Decision)
	}
}
