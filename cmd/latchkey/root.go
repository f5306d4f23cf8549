package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newRootCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "latchkey",
		Short:         "Latchkey, an OAuth 2.1 / OpenID Connect authorization server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newServeCmd(getenv), newMigrateCmd(getenv), newKeysCmd(getenv), newSessionsCmd(getenv), newTokenCmd(stdout), newBenchCmd(getenv), newSeedCmd(stdout), newPasswordCmd(stdout), newVersionCmd(stdout), newAdminCmd(getenv), newGateCmd(getenv), newImportCmd(getenv), newBFFCmd(getenv))
	return root
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version, the VCS revision it was built from and the Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(stdout, readBuild())
			return err
		},
	}
}

// build is what the binary records about its own build.
type build struct {
	Version  string // module version, "(devel)" when built from a checkout
	Revision string // VCS revision, "" when the build recorded none
	Time     string // commit time of Revision
	Modified bool   // the checkout had uncommitted changes
	Go       string
}

func readBuild() build {
	b := build{Version: "unknown", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String reads "latchkey VERSION [rev REVISION TIME [modified]] GO".
func (b build) String() string {
	s := "latchkey " + b.Version
	if b.Revision != "" {
		s += " rev " + b.Revision
		if b.Time != "" {
			s += " " + b.Time
		}
		if b.Modified {
			s += " modified"
		}
	}
	return s + " " + b.Go
}
