package adapter_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/console"
	"github.com/wardgate/wardgate/console/adapter"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/server"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

const (
	fx    = "../../fixtures/testdata/"
	fleet = "../../fixtures/fleet/testdata/"
	// compromised is the fleet fixture's 3CX-like infusion pump update.
	compromised = "sha256:7889dee97295a5ad686303faf86796bcb60b09eddd8af8ccac51b789affed93b"
	hostile     = `<script>alert(1)</script>`
)

type storyEnv struct {
	data    *adapter.Data
	log     *attest.Log
	tokens  *server.Tokens
	pump    string // the evaluated pump 2.4.0, with a hostile SBOM
	auditor server.Secret
	srv     *httptest.Server
	// The stores behind data, for the tests that change them.
	db   *sqlite.DB
	risk *gate.RiskCache
	inv  *egress.Inventory
	cfg  egress.Config
	deps adapter.Deps
}

// newStory builds the fleet fixture's story in the real stores: the
// inventory (and one device with a hostile name), the installations and
// the Defender telemetry in the SQLite egress store, and the infusion
// pump 2.4.0 evaluated by a real gate with a vendor SBOM whose component
// names are HTML.
func newStory(t *testing.T) *storyEnv {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	t.Setenv(attest.PasswordEnv, "")
	inv0, err := egress.ReadInventoryFile(fleet + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := egress.NewInventory(append(slices.Clone(inv0.Devices), egress.Device{Name: "HOSP-IOT-" + hostile, Class: "infusion-pump", Segment: "clinical"}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := egress.ReadConfigFile(fleet + "config.json")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := os.Open(fleet + "installations.json")
	if err != nil {
		t.Fatal(err)
	}
	ins, err := egress.ReadInstallations(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RecordInstallations(ctx, ins); err != nil {
		t.Fatal(err)
	}
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Ingest(ctx, egress.Source{Name: "defender.jsonl", Digest: "sha256:fixture"}, func(add func(*egress.Event) error) error {
		_, err := egress.Scan(bytes.NewReader(tel), func(ev *egress.Event) error {
			if d, ok := inv.Resolve(ev); ok {
				ev.DeviceName = d.Name
				return add(ev)
			}
			return nil
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	live := egress.NewLive() // the gate's incremental analysis (gate.Open)
	risk, err := gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) { return live.Analyze(ctx, db, inv, cfg) }, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := attest.Keygen(filepath.Join(dir, "signing"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.LoadSigner(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := attest.OpenLog(ctx, db, signer, "")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := trust.Load("../../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(ctx, policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(tc, eng, db, gate.WithLog(lg), gate.WithFleet(risk), gate.WithInstallations(db), gate.WithoutSBOMGeneration())
	if err != nil {
		t.Fatal(err)
	}
	sbomb, err := os.ReadFile(fx + "sbom/infusion-pump-2.4.0.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	sbomb = bytes.Replace(sbomb, []byte(`"name": "busybox"`), []byte(`"name": "busybox<script>alert(1)<\/script>"`), 1)
	var sigs []verify.Signature
	for _, p := range []string{"sig/infusion-pump-2.4.0.bin.sig", "keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"} {
		s, err := verify.LoadSignature(fx + p)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	out, err := g.Evaluate(ctx, gate.Update{Source: fx + "firmware/infusion-pump-2.4.0.bin", Kind: evidence.KindBlob, Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0",
		Signatures: sigs, VendorSBOM: sbomb})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := gate.OpenRecords(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := recs.Put(ctx, out); err != nil {
		t.Fatal(err)
	}
	tokens := server.NewTokens(db)
	aud, err := tokens.Create(ctx, server.RoleAuditor, "auditor")
	if err != nil {
		t.Fatal(err)
	}
	deps := adapter.Deps{Records: recs, Risk: risk, Fleet: db, Inventory: func() *egress.Inventory { return inv },
		Config: func() *egress.Config { return &cfg }, Log: lg, Tokens: tokens, WorkDir: filepath.Join(dir, "tmp")}
	data, err := adapter.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	con, err := console.New(data)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con.Handler())
	t.Cleanup(srv.Close)
	return &storyEnv{data: data, log: lg, tokens: tokens, pump: out.Evidence.Artifact.Digest, auditor: aud, srv: srv, db: db, risk: risk, inv: inv, cfg: cfg, deps: deps}
}

// analyse runs the fleet analysis again, over what the stores hold now.
func (e *storyEnv) analyse(t *testing.T) {
	t.Helper()
	e.risk.Invalidate()
	if _, err := e.risk.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestAdapterStory(t *testing.T) {
	e := newStory(t)
	ctx := t.Context()
	t.Run("updates", func(t *testing.T) {
		p, err := e.data.Updates(ctx, console.UpdateQuery{Sort: console.SortState, Desc: true, Page: console.Page{Limit: 50}})
		if err != nil {
			t.Fatal(err)
		}
		byDigest := map[string]console.UpdateSummary{}
		for _, u := range p.Updates {
			byDigest[u.Digest] = u
		}
		if u := byDigest[e.pump]; !u.Evaluated || u.Vendor != "acme-infusion" || u.Version != "2.4.0" {
			t.Errorf("evaluated pump: %+v", u)
		}
		if u := byDigest[compromised]; u.Evaluated || u.State != evidence.RiskQuarantined || u.Installed != 4 || u.Affected != 4 {
			t.Errorf("the fleet's compromised pump update: %+v", u)
		}
		if p.Updates[0].State != evidence.RiskQuarantined || p.Total != len(p.Updates) {
			t.Errorf("most severe first: %+v, total %d", p.Updates[0], p.Total)
		}
		q, err := e.data.Updates(ctx, console.UpdateQuery{DigestPrefix: compromised[:12], Page: console.Page{Limit: 50}})
		if err != nil || q.Total != 1 || q.Updates[0].Digest != compromised {
			t.Errorf("by digest prefix: %+v %v", q, err)
		}
		q, err = e.data.Updates(ctx, console.UpdateQuery{Vendor: "acme-infusion", Page: console.Page{Limit: 50}})
		if err != nil || q.Total != 1 {
			t.Errorf("by vendor: %+v %v", q, err)
		}
	})
	t.Run("update", func(t *testing.T) {
		d, err := e.data.Update(ctx, compromised)
		if err != nil {
			t.Fatal(err)
		}
		var pumps []string
		for _, c := range d.Contacts {
			if c.Destination == "raw.githubusercontent.com" {
				pumps = append(pumps, c.Device)
				if !c.First.After(c.Installed) || c.Connections == 0 || len(c.Hours) == 0 {
					t.Errorf("%s: first contact %s, installed %s, %d connections", c.Device, c.First, c.Installed, c.Connections)
				}
			}
		}
		slices.Sort(pumps)
		if strings.Join(pumps, ",") != "HOSP-IOT-PUMP-01,HOSP-IOT-PUMP-02,HOSP-IOT-PUMP-03,HOSP-IOT-PUMP-04" {
			t.Errorf("installers contacting the code-hosting site: %v", pumps)
		}
		if b := d.Baseline; b.Class != "infusion-pump" || !b.HasObservation || b.DeviceHourP95 <= 0 || b.ClassDevices != 7 {
			t.Errorf("baseline %+v", b)
		}
		if len(d.Devices) != 4 || d.Devices[0].Segment != "clinical" || !d.Devices[0].Affected {
			t.Errorf("blast radius %+v", d.Devices)
		}
		if d.Record != nil || len(d.Findings) == 0 {
			t.Errorf("record %v, %d findings", d.Record, len(d.Findings))
		}
		if _, err := e.data.Update(ctx, "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, console.ErrNotFound) {
			t.Errorf("unknown update: %v", err)
		}
		ev, err := e.data.Update(ctx, e.pump)
		if err != nil || ev.Record == nil || ev.Record.LogIndex == nil || ev.Record.Evidence.SBOM == nil {
			t.Fatalf("evaluated update: %+v %v", ev, err)
		}
	})
	t.Run("findings and devices", func(t *testing.T) {
		f, err := e.data.Findings(ctx, console.FindingQuery{Update: compromised, Severity: "quarantined", Page: console.Page{Limit: 50}})
		if err != nil || f.Total == 0 {
			t.Fatalf("%+v %v", f, err)
		}
		for _, x := range f.Findings {
			if x.Update != compromised || x.Severity != "quarantined" {
				t.Errorf("filtered finding %+v", x)
			}
		}
		dp, err := e.data.Devices(ctx, console.DeviceQuery{Search: "pump-0", Affected: true, Page: console.Page{Limit: 50}})
		if err != nil || dp.Total != 4 {
			t.Errorf("affected pumps: %d %v", dp.Total, err)
		}
		dd, err := e.data.Device(ctx, "hosp-iot-pump-01")
		if err != nil {
			t.Fatal(err)
		}
		if dd.Device.Name != "HOSP-IOT-PUMP-01" || len(dd.Installs) < 2 || dd.Installs[len(dd.Installs)-1].Digest != compromised || dd.Device.Current.State != "quarantined" {
			t.Errorf("device %+v installs %+v", dd.Device, dd.Installs)
		}
		if _, err := e.data.Device(ctx, "nope"); !errors.Is(err, console.ErrNotFound) {
			t.Errorf("unknown device: %v", err)
		}
	})
	t.Run("log and export", func(t *testing.T) {
		lp, err := e.data.LogPage(ctx, console.LogQuery{Page: console.Page{Limit: 25}})
		if err != nil || lp.Total != 1 || len(lp.Entries) != 1 || lp.Entries[0].TreeSize != lp.Checkpoint.Size {
			t.Fatalf("%+v %v", lp, err)
		}
		lp, err = e.data.LogPage(ctx, console.LogQuery{Artifact: e.pump, Page: console.Page{Limit: 25}})
		if err != nil || lp.Total != 1 {
			t.Errorf("by artifact: %d %v", lp.Total, err)
		}
		pack, err := e.data.Export(ctx, console.ExportQuery{Artifact: e.pump})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "pack.tar.gz")
		b, err := io.ReadAll(pack)
		pack.Close()
		if err != nil || int64(len(b)) != pack.Size {
			t.Fatalf("read %d of %d: %v", len(b), pack.Size, err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		pub, _ := e.log.Signer().PublicKeyPEM()
		rep, err := attest.VerifyPack(t.Context(), p, pub, nil)
		if err != nil || !rep.Intact || rep.Entries != 1 {
			t.Errorf("exported pack: %+v %v", rep, err)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		if _, err := e.data.Authenticate(ctx, "wgt_made-up-token-000000000000000000000000000000000"); !errors.Is(err, console.ErrUnauthenticated) {
			t.Errorf("unknown token: %v", err)
		}
		p, err := e.data.Authenticate(ctx, string(e.auditor))
		if err != nil || p != (console.Principal{Name: "auditor", Role: "auditor"}) {
			t.Errorf("%+v %v", p, err)
		}
	})
}

// The whole path, a hostile SBOM through the real gate and the adapter to
// the page: every name is escaped, and the sign-in is in the audit table.
func TestAdapterPagesEscapeHostileSBOM(t *testing.T) {
	e := newStory(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) string {
		t.Helper()
		resp, err := c.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	form := get("/ui/signin")
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(form)[1]
	resp, err := c.PostForm(e.srv.URL+"/ui/signin", url.Values{"csrf": {csrf}, "token": {string(e.auditor)}, "next": {"/ui/updates/" + e.pump}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if !strings.Contains(page, "busybox&lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(page, "<script>alert") {
		t.Errorf("the hostile SBOM component is not escaped on the update page")
	}
	for _, p := range []string{"/ui/devices", "/ui/updates", "/ui/findings", "/ui/log", "/ui/updates/" + compromised} {
		if b := get(p); strings.Contains(b, "<script>alert") {
			t.Errorf("%s: unescaped HTML", p)
		}
	}
	if b := get("/ui/devices?q=script"); !strings.Contains(b, "HOSP-IOT-&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the hostile device is not listed, escaped")
	}
	recs, err := e.tokens.AuditLog(t.Context(), server.AuditFilter{Action: "console sign-in"})
	if err != nil || len(recs) != 1 || recs[0].Token != "auditor" || recs[0].Outcome != "allow" {
		t.Errorf("audit of the sign-in: %+v %v", recs, err)
	}
}
