// Package seed reads, validates and applies the declarative seed file of realms,
// clients, roles and users.
package seed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// File is the seed file's schema.
type File struct {
	Realms []Realm `yaml:"realms"`
}

// Realm is a realm in the seed file: its configuration, realm roles, clients
// and users.
type Realm struct {
	registry.Realm `yaml:",inline"`
	Roles          []registry.Role `yaml:"roles"` // realm roles
	Clients        []Client        `yaml:"clients"`
	Users          []registry.User `yaml:"users"`
}

// Client is a client in the seed file: its configuration and its client roles.
type Client struct {
	registry.Client `yaml:",inline"`
	Roles           []registry.Role `yaml:"roles"`
}

// Error is a problem in a seed file, located by file, line and field.
type Error struct {
	File  string
	Line  int
	Field string // e.g. realms[0].clients[1].grant_types[0]
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Load reads and validates a seed file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seed file: %w", err)
	}
	return Parse(path, b)
}

// Parse reads and validates seed YAML; name is used in error messages.
func Parse(name string, data []byte) (*File, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &File{}, nil // an empty file seeds nothing
		}
		return nil, yamlError(name, err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if err := checkKeys(name, doc, reflect.TypeFor[File](), ""); err != nil {
		return nil, err
	}
	var f File
	if err := doc.Decode(&f); err != nil {
		return nil, yamlError(name, err)
	}
	if err := f.validate(name, doc); err != nil {
		return nil, err
	}
	return &f, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns the YAML library's errors into file:line messages.
func yamlError(name string, err error) error {
	var fe *registry.Error
	if errors.As(err, &fe) {
		return &Error{File: name, Line: fe.Line, Msg: fe.Msg}
	}
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLine.FindStringSubmatch(strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: name, Line: line, Msg: m[2]}
	}
	return &Error{File: name, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// checkKeys walks the YAML tree beside the Go type and refuses keys the schema does
// not have, so a typo is an error rather than a silently ignored setting.
func checkKeys(name string, n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[registry.JWKS]():
		return nil // free-form JSON, checked by validate
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			ft, ok := fields[key.Value]
			if !ok {
				return &Error{File: name, Line: key.Line, Field: path, Msg: fmt.Sprintf("unknown field %q", key.Value)}
			}
			if err := checkKeys(name, val, ft, join(path, key.Value)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, item := range n.Content {
			if err := checkKeys(name, item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode:
		if t.Kind() == reflect.Struct || t.Kind() == reflect.Slice || t.Kind() == reflect.String || t.Kind() == reflect.Bool || t.Kind() == reflect.Int64 {
			want := map[reflect.Kind]string{reflect.Struct: "a mapping", reflect.Slice: "a list"}[t.Kind()]
			if want == "" {
				want = "a single value"
			}
			return &Error{File: name, Line: n.Line, Field: path, Msg: "must be " + want}
		}
	}
	return nil
}

// yamlFields maps the YAML keys of a struct type to their types, with the fields of
// inlined structs as their own.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")
		switch {
		case len(tag) > 1 && tag[1] == "inline":
			maps.Copy(fields, yamlFields(t.Field(i).Type))
		case tag[0] != "":
			fields[tag[0]] = t.Field(i).Type
		}
	}
	return fields
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Warnings lists the risky settings the file forces: access tokens that live over
// MaxAccessTokenTTL.
func (f *File) Warnings() []string {
	var out []string
	long := func(d registry.Duration) bool { return time.Duration(d) > registry.MaxAccessTokenTTL }
	for _, r := range f.Realms {
		if long(r.AccessTokenTTL) {
			out = append(out, fmt.Sprintf("realm %s issues access tokens for %v: long-lived bearer tokens are hard to take back", r.Name, time.Duration(r.AccessTokenTTL)))
		}
		for _, c := range r.Clients {
			if long(c.AccessTokenTTL) {
				out = append(out, fmt.Sprintf("client %s of realm %s gets access tokens for %v: long-lived bearer tokens are hard to take back", c.ID, r.Name, time.Duration(c.AccessTokenTTL)))
			}
		}
	}
	return out
}

// CheckPlainHTTP refuses, unless allowed (dev mode or the insecure-http
// setting), a client with a plain-http back-channel logout URI. name is the
// file's, for the message.
func (f *File) CheckPlainHTTP(name string, allowed bool) error {
	for ri, r := range f.Realms {
		for ci := range r.Clients {
			var errs registry.Errors
			if errors.As(registry.CheckPlainHTTP(&r.Clients[ci].Client, allowed), &errs) {
				field := registry.FieldPath(append([]any{"realms", ri, "clients", ci}, errs[0].Path...)...)
				return &Error{File: name, Field: field, Msg: errs[0].Msg}
			}
		}
	}
	return nil
}

// validator collects the first problem, located in the file.
type validator struct {
	name string
	root *yaml.Node
	err  *Error
}

// fail records a problem at path (keys and indexes into the document). When the
// field itself is absent, the line is that of the nearest entity that is there.
func (v *validator) fail(msg string, path ...any) {
	if v.err != nil {
		return
	}
	n, line, field := v.root, v.root.Line, ""
	for _, p := range path {
		switch p := p.(type) {
		case string:
			field = join(field, p)
			n = child(n, p)
		case int:
			field = fmt.Sprintf("%s[%d]", field, p)
			if n != nil && n.Kind == yaml.SequenceNode && p < len(n.Content) {
				n = n.Content[p]
			} else {
				n = nil
			}
		}
		if n != nil {
			line = n.Line
		}
	}
	v.err = &Error{File: v.name, Line: line, Field: field, Msg: msg}
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (f *File) validate(name string, root *yaml.Node) error {
	v := &validator{name: name, root: root}
	realms := map[string]bool{}
	for ri := range f.Realms {
		r := &f.Realms[ri]
		at := func(p ...any) []any { return append([]any{"realms", ri}, p...) }
		v.report(registry.CheckRealm(&r.Realm), at()...)
		if realms[r.Name] {
			v.fail(fmt.Sprintf("duplicate realm %q", r.Name), at("name")...)
		}
		realms[r.Name] = true

		// Roles first (references to them are checked once all are known):
		// the realm's, then each client's.
		known := registry.RoleSet{}
		v.roles(known, r.Roles, "", at("roles"))
		clients := map[string]bool{}
		for ci := range r.Clients {
			c := &r.Clients[ci]
			v.report(registry.CheckClient(&c.Client), at("clients", ci)...)
			if clients[c.ID] {
				v.fail(fmt.Sprintf("duplicate client id %q", c.ID), at("clients", ci, "id")...)
			}
			clients[c.ID] = true
			v.roles(known, c.Roles, c.ID, at("clients", ci, "roles"))
		}
		for i := range r.Roles {
			v.report(registry.CheckCompositeRoles(&r.Roles[i], known), at("roles", i)...)
		}
		for ci := range r.Clients {
			c := &r.Clients[ci]
			for i := range c.Roles {
				v.report(registry.CheckCompositeRoles(&c.Roles[i], known), at("clients", ci, "roles", i)...)
			}
			v.report(registry.CheckClientRoles(&c.Client, known), at("clients", ci)...)
		}
		names, emails := map[string]bool{}, map[string]bool{}
		for ui := range r.Users {
			u := &r.Users[ui]
			v.report(registry.CheckUser(u, true), at("users", ui)...)
			v.report(registry.CheckUserRoles(u, known), at("users", ui)...)
			if names[u.Username] {
				v.fail(fmt.Sprintf("duplicate username %q", u.Username), at("users", ui, "username")...)
			}
			names[u.Username] = true
			if u.Email != "" && emails[u.Email] {
				v.fail(fmt.Sprintf("duplicate email %q", u.Email), at("users", ui, "email")...)
			}
			emails[u.Email] = true
		}
	}
	if v.err != nil {
		return v.err
	}
	return nil
}

// roles checks the roles of a realm (clientID "") or a client, at path, and
// adds them to known.
func (v *validator) roles(known registry.RoleSet, roles []registry.Role, clientID string, path []any) {
	for i := range roles {
		r := &roles[i]
		at := append(slices.Clone(path), i)
		v.report(registry.CheckRole(r, clientID), at...)
		ref := storage.RoleRef{ClientID: clientID, Name: r.Name}
		if known[ref] {
			v.fail(fmt.Sprintf("duplicate role %q", r.Name), append(at, "name")...)
		}
		known[ref] = true
	}
}

// report records the first of a registry check's errors, under the entity's path.
func (v *validator) report(err error, at ...any) {
	var errs registry.Errors
	if errors.As(err, &errs) && len(errs) > 0 {
		v.fail(errs[0].Msg, append(at, errs[0].Path...)...)
	}
}
