// Command wardgate is the gate between device vendors' updates and a
// hospital's devices. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
