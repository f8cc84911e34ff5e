package service

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// envFormat prints a configuration as a Markdown table row per variable: the
// configuration tables of docs/configuration.md are this output, so they cannot drift.
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

// EnvKeys lists the EDGEFLOW_* variables of spec, for tests that check the
// README documents every one.
func EnvKeys(spec any) ([]string, error) {
	var b strings.Builder
	if err := envconfig.Usagef("edgeflow", spec, &b, "{{range .}}{{usage_key .}}\n{{end}}"); err != nil {
		return nil, err
	}
	return strings.Fields(b.String()), nil
}

// CheckDocumented returns the variables of spec that the README at path does
// not mention.
func CheckDocumented(path string, spec any) ([]string, error) {
	readme, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := EnvKeys(spec)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, k := range keys {
		if !strings.Contains(string(readme), "`"+k+"`") {
			missing = append(missing, k)
		}
	}
	return missing, nil
}
