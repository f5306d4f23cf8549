// Command latchkey is the Latchkey OAuth 2.1 / OpenID Connect authorization server.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/latchkey/latchkey/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code. Every failure is one
// line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := newRootCmd(stdout, getenv)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "latchkey: "+oneLine(err.Error()))
		return 1
	}
	return 0
}

// oneLine folds a (possibly multi-line, driver-made) message onto one line and masks
// anything that looks like a credential.
func oneLine(s string) string {
	return logging.Scrub(strings.Join(strings.Fields(s), " "))
}
