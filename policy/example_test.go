package policy_test

import (
	"context"
	"fmt"
	"os"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/trust"
)

func ExampleEngine_Evaluate() {
	ctx := context.Background()
	cfg, err := trust.Load("testdata/trust.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	engine, err := policy.New(ctx, policy.WithTrust(cfg))
	if err != nil {
		fmt.Println(err)
		return
	}
	f, err := os.Open("testdata/typical.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	ev, err := evidence.Decode(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev.Device.InstalledVersion = "2.5.0" // the device already runs a newer release

	d, err := engine.Evaluate(ctx, ev)
	if err != nil {
		d = policy.CouldNotEvaluate(err) // fail closed
	}
	fmt.Println("allow:", d.Allow)
	for _, v := range d.Violations {
		fmt.Printf("%s [%s]: %s\n", v.Code, v.Severity, v.Message)
	}
	// Output:
	// allow: false
	// rollback [high]: version 2.4.0 is older than 2.5.0 installed on device pump-icu-0042; a rollback reinstates fixed vulnerabilities, install 2.5.0 or newer
}
