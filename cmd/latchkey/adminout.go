package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printObject writes one API object: its JSON as the API sent it (indented) with
// -o json, else one "field: value" line per field, in the API's order.
func (af *adminFlags) printObject(w io.Writer, raw []byte) error {
	if af.output == "json" {
		return printJSON(w, raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return printJSON(w, raw)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s:\t%s\n", k, fieldText(v))
	}
	return tw.Flush()
}

// fieldText shows a JSON value to a person: strings unquoted, lists of strings
// joined, anything else compact.
func fieldText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(v, &list) == nil {
		return strings.Join(list, " ")
	}
	var b bytes.Buffer
	if json.Compact(&b, v) == nil {
		return b.String()
	}
	return string(v)
}

// printJSON writes raw indented, ending with a newline.
func printJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		b.Reset()
		b.Write(raw)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// printList writes the items of a list: {"items": [...]} with -o json (and the
// next cursor when --limit stopped early), else a table of the header's columns
// with one row per item from row.
func printList[T any](af *adminFlags, w io.Writer, p page, header []string, row func(T) []string) error {
	if af.output == "json" {
		if p.Items == nil {
			p.Items = []json.RawMessage{}
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return printJSON(w, b)
	}
	rows := make([][]string, 0, len(p.Items))
	for _, raw := range p.Items {
		var item T
		if err := json.Unmarshal(raw, &item); err != nil {
			return fmt.Errorf("the API sent an item that is not the expected JSON: %v", err)
		}
		rows = append(rows, row(item))
	}
	return printTable(w, header, rows)
}

// printTable writes aligned columns; empty cells show as "-".
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			if c == "" {
				c = "-"
			}
			cells[i] = strings.ReplaceAll(c, "\t", " ")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// ts shows an RFC 3339 time in UTC to the second.
func ts(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// done tells a person what happened (a table-mode confirmation of a change the
// API answered with no body); with -o json nothing is printed.
func (af *adminFlags) done(w io.Writer, format string, args ...any) error {
	if af.output == "json" {
		return nil
	}
	_, err := fmt.Fprintf(w, format+"\n", args...)
	return err
}
