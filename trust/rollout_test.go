package trust_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/trust"
)

func rolloutConfig(rollout string) string {
	return `version: 1
vendors:
  v:
    products:
      p:
        device_classes: [pump, monitor]
        authorities: {keys: [{path: acme.pub}]}
        rollout:
` + rollout
}

func TestLoadRollout(t *testing.T) {
	c := load(t, writeConfig(t, rolloutConfig(`          rings:
            - {name: canary, share: 5%, soak: 48h, min_reporting: 3}
            - {name: early, share: 12.5%, soak: 1d}
            - {name: broad, share: 100%}
          classes:
            pump:
              rings:
                - {name: all, share: 100%}
`)))
	p, _ := c.Product("v", "p")
	want := &trust.Rollout{
		Rings: []trust.Ring{
			{Name: "canary", Share: 500, Soak: 48 * time.Hour, MinReporting: 3},
			{Name: "early", Share: 1250, Soak: 24 * time.Hour, MinReporting: 1},
			{Name: "broad", Share: trust.FullShare, MinReporting: 1},
		},
		Classes: map[string][]trust.Ring{"pump": {{Name: "all", Share: trust.FullShare, MinReporting: 1}}},
	}
	if !reflect.DeepEqual(p.Rollout, want) {
		t.Fatalf("rollout:\n got %+v\nwant %+v", p.Rollout, want)
	}
	if got := p.Rollout.RingsFor("pump"); got[0].Name != "all" {
		t.Fatalf("RingsFor(pump) = %+v", got)
	}
	if got := p.Rollout.RingsFor("monitor"); got[0].Name != "canary" {
		t.Fatalf("RingsFor(monitor) = %+v", got)
	}
	if got := trust.FormatShare(1250); got != "12.5%" {
		t.Fatalf("FormatShare(1250) = %s", got)
	}
	// Rings are not part of the digest: they do not change how an update
	// is evaluated.
	plain := load(t, writeConfig(t, strings.Split(rolloutConfig(""), "        rollout:")[0]))
	if plain.Digest() != c.Digest() {
		t.Fatal("rollout: changed the configuration digest")
	}
}

func TestLoadRolloutErrors(t *testing.T) {
	const f = "vendors.v.products.p.rollout"
	for _, tc := range []struct{ name, body, want string }{
		{"no rings", "          classes: {}\n", `trust.yaml:9: ` + f + `.rings: required; list the rings, the last with share 100%`},
		{"empty rings", "          rings: []\n", `trust.yaml:9: ` + f + `.rings: want at least one ring`},
		{"bad share", "          rings: [{name: a, share: 5}]\n", `trust.yaml:9: ` + f + `.rings[0].share: want a percentage such as 5% or 12.5%, got "5"`},
		{"zero share", "          rings: [{name: a, share: 0%}]\n", `trust.yaml:9: ` + f + `.rings[0].share: want more than 0% and at most 100%, got "0%"`},
		{"over 100", "          rings: [{name: a, share: 150%}]\n", `trust.yaml:9: ` + f + `.rings[0].share: want more than 0% and at most 100%, got "150%"`},
		{"not full", "          rings: [{name: a, share: 50%}]\n", `trust.yaml:9: ` + f + `.rings[0].share: the last ring must reach 100%, got 50%`},
		{"not increasing", "          rings:\n            - {name: a, share: 50%}\n            - {name: b, share: 50%}\n            - {name: c, share: 100%}\n",
			`trust.yaml:11: ` + f + `.rings[1].share: must be larger than the previous ring's 50% (rings are cumulative)`},
		{"duplicate name", "          rings:\n            - {name: a, share: 50%}\n            - {name: a, share: 100%}\n", `trust.yaml:11: ` + f + `.rings[1].name: duplicate ring "a"`},
		{"no name", "          rings: [{share: 100%}]\n", `trust.yaml:9: ` + f + `.rings[0].name: required`},
		{"min_reporting 0", "          rings: [{name: a, share: 100%, min_reporting: 0}]\n", `trust.yaml:9: ` + f + `.rings[0].min_reporting: must be at least 1 (no telemetry is no evidence)`},
		{"bad soak", "          rings: [{name: a, share: 100%, soak: later}]\n", `trust.yaml:9: ` + f + `.rings[0].soak: want a duration such as 720h, 90m or 30d, got "later"`},
		{"unknown ring field", "          rings: [{name: a, share: 100%, wait: 1h}]\n", `trust.yaml:9: ` + f + `.rings[0].wait: unknown field; want one of min_reporting, name, share, soak`},
		{"unknown class", "          rings: [{name: a, share: 100%}]\n          classes: {mri: {rings: [{name: a, share: 100%}]}}\n", `trust.yaml:10: ` + f + `.classes.mri: device class "mri" is not in device_classes`},
		{"class without rings", "          rings: [{name: a, share: 100%}]\n          classes: {pump: {}}\n", `trust.yaml:10: ` + f + `.classes.pump.rings: required; list the class's rings`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, rolloutConfig(tc.body))
			_, err := trust.Load(path)
			if !errors.Is(err, trust.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			got := strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", "")
			if got != tc.want {
				t.Fatalf("err:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
