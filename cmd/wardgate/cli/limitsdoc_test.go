package cli

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/server"
)

// docDefault writes a default as the limits table in docs/serve.md does.
func docDefault(v reflect.Value) string {
	if d, ok := v.Interface().(time.Duration); ok {
		switch {
		case d == 0:
			return "0"
		case d%time.Minute == 0:
			return fmt.Sprintf("%d min", d/time.Minute)
		case d%time.Second == 0:
			return fmt.Sprintf("%d s", d/time.Second)
		}
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
	n := v.Int()
	switch {
	case n == 0:
		return "0"
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0 && v.Type().Name() == "int64":
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprint(n)
}

// The limits table in docs/serve.md names every key of the configuration
// file's limits (and no other), with server.DefaultLimits' default; the
// risk cache's keys too. The example configuration lists every key.
func TestLimitsTableMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../../../docs/serve.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, table, ok := strings.Cut(doc, "## Limits\n")
	if !ok {
		t.Fatal("docs/serve.md has no Limits section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	rows := map[string]string{} // key -> default cell
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 6 {
			continue
		}
		for _, k := range strings.Split(cells[2], ",") {
			k = strings.Trim(strings.TrimSpace(k), "`")
			if strings.HasPrefix(k, "limits.") || strings.HasPrefix(k, "risk_") {
				rows[k] = strings.TrimSpace(cells[3])
			}
		}
	}
	ft, _ := reflect.TypeFor[ServeFile]().FieldByName("Limits")
	defaults := reflect.ValueOf(server.DefaultLimits)
	seen := map[string]bool{}
	for i := range ft.Type.NumField() {
		f := ft.Type.Field(i)
		key := "limits." + f.Tag.Get("yaml")
		seen[key] = true
		cell, ok := rows[key]
		if !ok {
			t.Errorf("%s is not in the limits table", key)
			continue
		}
		def := defaults.FieldByName(f.Name)
		if !def.IsValid() { // the firmware unpacking limits: firmware's defaults
			def = reflect.ValueOf(firmwareDefaults[f.Name])
		}
		if want := docDefault(def); !strings.HasPrefix(cell, want) {
			t.Errorf("%s: the table says %q, the default is %s", key, cell, want)
		}
		if !strings.Contains(doc, "\n  "+f.Tag.Get("yaml")+": ") {
			t.Errorf("%s is not in the example configuration", key)
		}
	}
	for k, want := range map[string]string{"risk_fresh_wait": docDefault(reflect.ValueOf(gate.DefaultFreshWait)), "risk_max_staleness": docDefault(reflect.ValueOf(gate.DefaultMaxStaleness)),
		"risk_cache_ttl": "5 s"} {
		seen[k] = true
		if !strings.HasPrefix(rows[k], want) {
			t.Errorf("%s: the table says %q, the default is %s", k, rows[k], want)
		}
	}
	for k := range rows {
		if !seen[k] {
			t.Errorf("the limits table names %s, which the configuration file does not have", k)
		}
	}
}

// firmwareDefaults are the defaults of the unpacking limits serve's
// configuration file sets (they are firmware's, not the server's).
var firmwareDefaults = map[string]any{
	"MaxUnpackBytes": int64(firmware.DefaultMaxBytes),
	"MaxUnpackFiles": firmware.DefaultMaxFiles,
	"MaxUnpackDepth": firmware.DefaultMaxDepth,
	"MaxUnpackRatio": firmware.DefaultMaxRatio,
}
