package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/tracing"
)

// serveUsage is serve -h: its flag, then every environment variable with
// its default and meaning, from config.Vars (the table the README shows).
func serveUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "usage: boomerang serve [--addr ADDR]")
	fmt.Fprintln(w, "Runs the service: API, workers or both (BOOMERANG_ROLE), configured by the environment.")
	fmt.Fprintln(w, "\nFlags:")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nEnvironment (default in brackets; empty when none):")
	for _, v := range config.Vars {
		fmt.Fprintf(w, "  %s [%s]\n", v.Name, v.Default)
		fmt.Fprintf(w, "    \t%s\n", wrap(v.Help, 76, "    \t"))
	}
	fmt.Fprintln(w, "\nTraces (OpenTelemetry's standard variables; nothing is exported unless they ask;")
	fmt.Fprintln(w, "the README's Traces section gives their defaults):")
	fmt.Fprintf(w, "    \t%s\n", wrap(strings.Join(tracing.Vars, " "), 76, "    \t"))
}

// wrap breaks s into lines of at most width runes at spaces, each line
// after the first starting with indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 && n+1+len(word) > width {
			b.WriteString("\n" + indent)
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
