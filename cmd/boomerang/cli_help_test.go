package main

import (
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/tracing"
)

// TestHelp: `boomerang help` lists every command, and every command's -h
// and --help (and `help COMMAND`) exits 0 with its flags: serve's with every
// environment variable and its default, the admin groups' with every
// subcommand and its flags.
func TestHelp(t *testing.T) {
	none := func(string) string { return "" }
	var out, errOut testkit.SyncBuffer
	if err := run(context.Background(), []string{"boomerang", "help"}, none, &out, &errOut); err != nil {
		t.Fatalf("help = %v, want nil", err)
	}
	for _, c := range commands() {
		if !strings.Contains(out.String(), "\n  "+c.name+" ") {
			t.Errorf("help does not list %s:\n%s", c.name, &out)
		}
	}

	wants := map[string][]string{
		"serve":  {"-addr"},
		"listen": {"-secret", "-addr", "-tolerance"},
		"submit": {"-type", "-payload", "-callback", "-idempotency-key", "-deadline", "-metadata", "-watch", "-url", "-api-key"},
		"status": {"-url", "-api-key"},
		"work":   {"-type", "-concurrency", "-url", "-worker-key"},
	}
	for _, v := range config.Vars {
		wants["serve"] = append(wants["serve"], v.Name+" ["+v.Default+"]")
	}
	wants["serve"] = append(wants["serve"], tracing.Vars...)
	groups := map[string]struct {
		subs  []subcommand
		flags map[string]func(*flag.FlagSet)
	}{"clients": {clientSubs, clientFlags}, "deliveries": {deliverySubs, deliveryFlags}, "replays": {replaySubs, replayFlags}}
	for name, g := range groups {
		wants[name] = []string{"--json", "--url", "--admin-token"}
		for _, s := range g.subs {
			wants[name] = append(wants[name], "\n  "+s.name+" ")
			if add := g.flags[s.name]; add != nil {
				fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
				add(fs)
				fs.VisitAll(func(f *flag.Flag) { wants[name] = append(wants[name], "--"+f.Name) })
			}
		}
	}
	for _, c := range commands() {
		if c.name == "help" {
			continue
		}
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "--help"}, {"help", c.name}} {
			var out, errOut testkit.SyncBuffer
			err := run(context.Background(), append([]string{"boomerang"}, args...), none, &out, &errOut)
			if err != nil {
				t.Errorf("boomerang %s = %v, want nil (exit 0)", strings.Join(args, " "), err)
			}
			text := out.String() + errOut.String()
			if c.name != "version" && !strings.Contains(text, "usage: boomerang "+c.name) {
				t.Errorf("boomerang %s printed no usage line:\n%s", strings.Join(args, " "), text)
			}
			if args[0] == "help" && errOut.String() != "" {
				t.Errorf("boomerang %s wrote to stderr, want stdout only:\n%s", strings.Join(args, " "), &errOut)
			}
			for _, w := range wants[c.name] {
				if !strings.Contains(text, w) {
					t.Errorf("boomerang %s does not mention %q:\n%s", strings.Join(args, " "), w, text)
				}
			}
		}
	}

	if err := run(context.Background(), []string{"boomerang", "nonsense"}, none, &out, &errOut); err == nil || !strings.Contains(err.Error(), "boomerang help") {
		t.Errorf("an unknown command = %v, want an error pointing to boomerang help", err)
	}
}
