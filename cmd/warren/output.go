package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// printer renders list and inspect results in the format chosen with -o.
type printer struct {
	format string // table | json | yaml
	w      io.Writer
}

func validFormat(f string) error {
	switch f {
	case "table", "json", "yaml":
		return nil
	}
	return fmt.Errorf("output format %q: must be table, json or yaml", f)
}

// object prints v as JSON or YAML, or calls table for the table format.
func (p printer) object(v any, table func(tw *tabwriter.Writer)) error {
	switch p.format {
	case "json":
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	default:
		tw := tabwriter.NewWriter(p.w, 0, 4, 3, ' ', 0)
		table(tw)
		return tw.Flush()
	}
}

func row(tw io.Writer, cols ...any) {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(tw, strings.Join(s, "\t"))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
