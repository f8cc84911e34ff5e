package service

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// envFormat prints a configuration as a Markdown table row per variable: the
// README's configuration tables are this output, so they cannot drift.
const envFormat = `{{range .}}| ` + "`{{usage_key .}}`" + ` | {{usage_default .}} | {{usage_description .}} |
{{end}}`

// PrintEnv writes the EDGEFLOW_* variables of spec (a pointer to a Config
// struct) with their defaults and descriptions, as a Markdown table.
func PrintEnv(w io.Writer, service string, spec any) {
	fmt.Fprintf(w, "| %s variable | default | meaning |\n|---|---|---|\n", service)
	tw := tabwriter.NewWriter(w, 1, 0, 1, ' ', 0)
	if err := envconfig.Usagef("edgeflow", spec, tw, envFormat); err != nil {
		fmt.Fprintln(w, "error:", err)
	}
	tw.Flush()
}
