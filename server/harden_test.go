package server

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/egress"
)

// The auth scheme is case-insensitive (RFC 7235 section 2.1): "bearer",
// "BEARER" and "Bearer" all carry the token; other schemes do not.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	e := newEnv(t)
	tok := string(e.tokens[RoleAuditor])
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "bEaReR  " + tok} {
		r := e.do("GET", "/v1/log/checkpoint", "", "", nil, "Authorization", h)
		if r.status != 200 {
			t.Errorf("%q: %d %s", strings.Replace(h, tok, "TOKEN", 1), r.status, r.body)
		}
	}
	for _, h := range []string{"Basic " + tok, "Bearer" + tok, tok, "Bearer "} {
		r := e.do("GET", "/v1/log/checkpoint", "", "", nil, "Authorization", h)
		if r.status != 401 || r.errorCode(t) != "unauthorized" {
			t.Errorf("%q: %d %s", strings.Replace(h, tok, "TOKEN", 1), r.status, r.body)
		}
	}
}

// Request bodies are strict JSON: keys are case-sensitive, a repeated key
// is refused at any depth, invalid UTF-8 is refused rather than turned
// into U+FFFD, and identifiers carry no control or bidirectional
// formatting characters.
func TestStrictJSONAndIdentifiers(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	d := e.digest
	cases := []struct{ name, body, want string }{
		{"key in another case", `{"DIGEST":"` + d + `","device":{"id":"P-1","class":"infusion-pump"}}`, `key "DIGEST": keys are case-sensitive; the field is "digest"`},
		{"nested key in another case", `{"digest":"` + d + `","device":{"ID":"P-1","class":"infusion-pump"}}`, `key "device.ID": keys are case-sensitive; the field is "device.id"`},
		{"repeated key", `{"digest":"` + d + `","device":{"id":"P-1","class":"infusion-pump"},"digest":"sha256:` + strings.Repeat("0", 64) + `"}`, `key "digest" appears more than once`},
		{"repeated nested key", `{"digest":"` + d + `","device":{"id":"P-1","class":"infusion-pump","id":"P-2"}}`, `key "device.id" appears more than once`},
		{"invalid UTF-8", "{\"digest\":\"" + d + "\",\"device\":{\"id\":\"P-\xff\",\"class\":\"infusion-pump\"}}", "not valid UTF-8"},
		{"lone surrogate", `{"digest":"` + d + `","device":{"id":"P-\ud800","class":"infusion-pump"}}`, "device.id holds U+FFFD"},
		{"NUL in device id", `{"digest":"` + d + `","device":{"id":"P-1\u0000","class":"infusion-pump"}}`, "device.id holds control character U+0000"},
		{"newline in device id", `{"digest":"` + d + `","device":{"id":"P-1\nINJECTED","class":"infusion-pump"}}`, "device.id holds control character U+000A"},
		{"ANSI escape in class", `{"digest":"` + d + `","device":{"id":"P-1","class":"\u001b[2Jpump"}}`, "device.class holds control character U+001B"},
		{"bidi override in version", `{"digest":"` + d + `","device":{"id":"P-1","class":"infusion-pump","installedVersion":"2.3.0\u202e"}}`, "device.installedVersion holds bidirectional formatting character U+202E"},
		{"deep nesting", `{"digest":"` + d + `","device":{"id":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,"class":"infusion-pump"}}`, "nested deeper than 64 levels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/admissions", RoleUpdateServer, "application/json", strings.NewReader(tc.body))
			if r.status != 400 || r.errorCode(t) != "bad-request" || !strings.Contains(r.message(t), tc.want) {
				t.Fatalf("%d %s, want 400 naming %q", r.status, r.body, tc.want)
			}
		})
	}
	// The same request, exactly cased, is admitted.
	r := e.do("POST", "/v1/admissions", RoleUpdateServer, "application/json", strings.NewReader(`{"digest":"`+d+`","device":{"id":"P-1","class":"infusion-pump","installedVersion":"2.3.0"}}`))
	if r.status != 200 || !strings.Contains(string(r.body), `"allow":true`) {
		t.Fatalf("exact request: %d %s", r.status, r.body)
	}
	// Multipart fields of an upload follow the same identifier rules.
	fields := map[string]string{"vendor": "acme-infusion", "product": "infusion-pump\x1b[31m", "version": "2.4.0"}
	ct, body := upload(t, fields, pumpFiles())
	r = e.do("POST", "/v1/updates", RoleCI, ct, body)
	if r.status != 400 || !strings.Contains(r.message(t), "product holds control character U+001B") {
		t.Fatalf("upload with an escape in product: %d %s", r.status, r.body)
	}
	// So do query parameters naming a device.
	r = e.do("GET", "/v1/evidence?device=P-1%0Ax", RoleAuditor, "", nil)
	if r.status != 400 || !strings.Contains(r.message(t), "device holds control character U+000A") {
		t.Fatalf("evidence for a device with a newline: %d %s", r.status, r.body)
	}
}

// message is the error body's message.
func (r resp) message(t testing.TB) string {
	t.Helper()
	var b errorBody
	r.json(t, &b)
	return b.Error.Message
}

// A batch is recorded as ingested only when it stored events, under a key
// that includes the format it was parsed as: Defender lines sent as
// zeek-tsv are refused with 422 and nothing is recorded, so the same body
// sent again with the right format (or none) is stored.
func TestTelemetryWrongFormatIsNotLost(t *testing.T) {
	e := newEnv(t)
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	batch := bytes.Join(bytes.SplitAfter(tel, []byte("\n"))[:20], nil)
	post := func(format string) (resp, TelemetryResponse) {
		t.Helper()
		var h []string
		if format != "" {
			h = []string{TelemetryFormatHeader, format}
		}
		r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(batch), h...)
		var tr TelemetryResponse
		if r.status == 200 {
			r.json(t, &tr)
		}
		return r, tr
	}
	for _, f := range []string{"zeek-tsv", "zeek-json", "ocsf-json", "defender-csv"} {
		r, _ := post(f)
		if r.status != 422 || r.errorCode(t) != "no-events" || !strings.Contains(r.message(t), "no line of the batch is an event of format "+f+": 20 lines, ") {
			t.Fatalf("as %s: %d %s", f, r.status, r.body)
		}
	}
	r, tr := post("")
	if r.status != 200 || !tr.Added || tr.Stored != 20 || tr.Stats.Format != "defender-json" {
		t.Fatalf("resent without the header: %d %s", r.status, r.body)
	}
	// The same body as the format it is: the same parse, the same batch.
	if r, tr = post("defender-json"); r.status != 200 || tr.Added || tr.Stored != 0 {
		t.Fatalf("resent as defender-json: %d %s", r.status, r.body)
	}
	// Events of devices the inventory does not know are not stored, and
	// the batch is not recorded: once the inventory knows them, they are.
	batch = []byte(strings.NewReplacer("HOSP-IOT-", "WARD-9-", `"LocalIP":"10.`, `"LocalIP":"11.`).Replace(string(batch)))
	r, _ = post("")
	if r.status != 422 || r.errorCode(t) != "no-events" || !strings.Contains(r.message(t), "none of the batch's 20 events is from a device in the fleet inventory") {
		t.Fatalf("unknown devices: %d %s", r.status, r.body)
	}
	inv, err := os.ReadFile(fleet + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	ni, err := egress.ReadInventory(strings.NewReader(strings.ReplaceAll(string(inv), "HOSP-IOT-", "WARD-9-")))
	if err != nil {
		t.Fatal(err)
	}
	e.inv.Store(ni)
	if r, tr = post(""); r.status != 200 || !tr.Added || tr.Stored != 20 {
		t.Fatalf("after the inventory learnt the devices: %d %s", r.status, r.body)
	}
}
