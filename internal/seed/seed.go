// Package seed reads, validates and applies the declarative seed file of realms,
// clients and users.
package seed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.yaml.in/yaml/v3"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/token"
)

// File is the seed file's schema.
type File struct {
	Realms []Realm `yaml:"realms"`
}

// Realm is a realm in the seed file.
type Realm struct {
	Name           string   `yaml:"name"`
	DisplayName    string   `yaml:"display_name"`
	SigningAlg     string   `yaml:"signing_alg"`
	AccessTokenTTL Duration `yaml:"access_token_ttl"`
	// AllowLongAccessTokens lets access_token_ttl exceed one hour.
	AllowLongAccessTokens bool     `yaml:"allow_long_access_tokens"`
	Clients               []Client `yaml:"clients"`
	Users                 []User   `yaml:"users"`
}

// Client is a client in the seed file.
type Client struct {
	ID                       string    `yaml:"id"`
	Name                     string    `yaml:"name"`
	Secret                   string    `yaml:"secret"`
	JWKS                     JWKS      `yaml:"jwks"` // public keys for private_key_jwt
	RedirectURIs             []string  `yaml:"redirect_uris"`
	PostLogoutRedirectURIs   []string  `yaml:"post_logout_redirect_uris"`
	GrantTypes               []string  `yaml:"grant_types"`
	Scopes                   []string  `yaml:"scopes"`
	Audiences                []string  `yaml:"audiences"`
	ThirdParty               bool      `yaml:"third_party"`
	Disabled                 bool      `yaml:"disabled"`
	PKCEOptional             bool      `yaml:"pkce_optional"`                // confidential clients only
	IDTokenSignedResponseAlg string    `yaml:"id_token_signed_response_alg"` // RS256 (default), ES256 or EdDSA
	AccessTokenTTL           Duration  `yaml:"access_token_ttl"`
	AllowLongAccessTokens    bool      `yaml:"allow_long_access_tokens"`
	AccessTokenFormat        string    `yaml:"access_token_format"`
	RefreshPreset            string    `yaml:"refresh_preset"`
	RefreshIdle              Duration  `yaml:"refresh_idle"`
	RefreshAbsolute          Duration  `yaml:"refresh_absolute"`
	RefreshRetryWindow       *Duration `yaml:"refresh_retry_window"` // nil: the default; 0s turns it off
}

// User is a user in the seed file.
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordHash is an argon2id hash in PHC form (as `latchkey password hash`
	// prints), instead of Password: kept as it is, so a start hashes nothing.
	PasswordHash  string `yaml:"password_hash"`
	Email         string `yaml:"email"`
	EmailVerified bool   `yaml:"email_verified"`
	Name          string `yaml:"name"`
	Disabled      bool   `yaml:"disabled"`
}

// Duration is a Go duration string in the file ("5m", "24h", "0s").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return &fieldError{line: n.Line, msg: fmt.Sprintf("%q is not a duration (write it like 5m, 24h or 0s)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// JWKS is a client's JWK Set, written in the file as a mapping (or as JSON, which
// YAML reads the same) and kept as JSON.
type JWKS []byte

// UnmarshalYAML implements yaml.Unmarshaler.
func (j *JWKS) UnmarshalYAML(n *yaml.Node) error {
	var v map[string]any
	if err := n.Decode(&v); err != nil {
		return &fieldError{line: n.Line, msg: "jwks must be a JWK Set: a mapping with a keys list"}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return &fieldError{line: n.Line, msg: "jwks must be a JWK Set: " + err.Error()}
	}
	*j = b
	return nil
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

type fieldError struct {
	line int
	msg  string
}

func (e *fieldError) Error() string { return e.msg }

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
	var fe *fieldError
	if errors.As(err, &fe) {
		return &Error{File: name, Line: fe.line, Msg: fe.msg}
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
	case t == reflect.TypeFor[JWKS]():
		return nil // free-form JSON, checked by validate
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" {
				fields[tag] = t.Field(i).Type
			}
		}
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
	long := func(d Duration) bool { return time.Duration(d) > MaxAccessTokenTTL }
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

// Presets for refresh-token lifetimes by client type.
type Preset struct {
	Idle, Absolute time.Duration
}

// Presets are the refresh lifetimes per client type; "service" issues no refresh tokens.
var Presets = map[string]Preset{
	"web":     {Idle: 24 * time.Hour, Absolute: 14 * 24 * time.Hour},
	"mobile":  {Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour},
	"spa":     {Idle: time.Hour, Absolute: 24 * time.Hour},
	"service": {},
}

// Defaults that the seed file may override.
const (
	DefaultSigningAlg         = "ES256"
	DefaultAccessTokenTTL     = 5 * time.Minute
	DefaultRefreshRetryWindow = 10 * time.Second
	// MaxAccessTokenTTL is the longest access-token lifetime allowed without
	// allow_long_access_tokens.
	MaxAccessTokenTTL = time.Hour
	maxRetryWindow    = time.Minute
)

var (
	signingAlgs  = []string{"ES256", "EdDSA", "RS256"}
	grantTypes   = []string{"authorization_code", "client_credentials", "refresh_token"}
	tokenFormats = []string{"jwt", "opaque"}
)

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
		switch err := ident.Realm(r.Name); {
		case err != nil:
			v.fail(fmt.Sprintf("realm name %q %v", r.Name, err), at("name")...)
		case realms[r.Name]:
			v.fail(fmt.Sprintf("duplicate realm %q", r.Name), at("name")...)
		}
		realms[r.Name] = true
		if r.SigningAlg == "" {
			r.SigningAlg = DefaultSigningAlg
		} else if !slices.Contains(signingAlgs, r.SigningAlg) {
			v.fail(fmt.Sprintf("unknown signing_alg %q (want one of %s)", r.SigningAlg, strings.Join(signingAlgs, ", ")), at("signing_alg")...)
		}
		if r.AccessTokenTTL == 0 {
			r.AccessTokenTTL = Duration(DefaultAccessTokenTTL)
		}
		v.checkTTL(r.AccessTokenTTL, r.AllowLongAccessTokens, at("access_token_ttl")...)

		clients := map[string]bool{}
		for ci := range r.Clients {
			v.validateClient(&r.Clients[ci], clients, func(p ...any) []any { return at(append([]any{"clients", ci}, p...)...) })
		}
		names, emails := map[string]bool{}, map[string]bool{}
		for ui := range r.Users {
			u := &r.Users[ui]
			uat := func(p ...any) []any { return at(append([]any{"users", ui}, p...)...) }
			u.Username = strings.ToLower(strings.TrimSpace(u.Username))
			u.Email = strings.ToLower(strings.TrimSpace(u.Email))
			switch err := ident.Username(u.Username); {
			case err != nil:
				v.fail(fmt.Sprintf("username %q %v", u.Username, err), uat("username")...)
			case names[u.Username]:
				v.fail(fmt.Sprintf("duplicate username %q", u.Username), uat("username")...)
			}
			names[u.Username] = true
			if u.Email != "" {
				if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
					v.fail(fmt.Sprintf("%q is not an email address", u.Email), uat("email")...)
				} else if err := ident.LoginName(u.Email); err != nil {
					v.fail(fmt.Sprintf("email %q %v: users sign in with it", u.Email, err), uat("email")...)
				} else if emails[u.Email] {
					v.fail(fmt.Sprintf("duplicate email %q", u.Email), uat("email")...)
				}
				emails[u.Email] = true
			}
			switch {
			case u.PasswordHash != "" && u.Password != "":
				v.fail("give password or password_hash, not both", uat("password_hash")...)
			case u.PasswordHash != "":
				if err := password.CheckHash(u.PasswordHash, password.Default); err != nil {
					v.fail(fmt.Sprintf("%v (want an argon2id PHC string, as `latchkey password hash` prints)", err), uat("password_hash")...)
				}
			case len(u.Password) < password.MinLen:
				v.fail(fmt.Sprintf("password must have at least %d characters", password.MinLen), uat("password")...)
			}
		}
	}
	if v.err != nil {
		return v.err
	}
	return nil
}

func (v *validator) validateClient(c *Client, seen map[string]bool, at func(p ...any) []any) {
	switch err := ident.ClientID(c.ID); {
	case err != nil:
		v.fail(fmt.Sprintf("client id %q %v", c.ID, err), at("id")...)
	case seen[c.ID]:
		v.fail(fmt.Sprintf("duplicate client id %q", c.ID), at("id")...)
	}
	seen[c.ID] = true

	if len(c.GrantTypes) == 0 {
		v.fail("grant_types must name at least one of "+strings.Join(grantTypes, ", "), at("grant_types")...)
	}
	for i, g := range c.GrantTypes {
		switch {
		case g == "password" || g == "implicit":
			v.fail(fmt.Sprintf("grant type %q is not offered: OAuth 2.1 removed it", g), at("grant_types", i)...)
		case !slices.Contains(grantTypes, g):
			v.fail(fmt.Sprintf("unknown grant type %q (want %s)", g, strings.Join(grantTypes, ", ")), at("grant_types", i)...)
		}
	}
	if len(c.JWKS) > 0 {
		var set jose.JSONWebKeySet
		switch err := json.Unmarshal(c.JWKS, &set); {
		case err != nil:
			v.fail("jwks is not a JWK Set: "+err.Error(), at("jwks")...)
		case len(set.Keys) == 0:
			v.fail("jwks has no usable keys", at("jwks")...)
		case slices.ContainsFunc(set.Keys, func(k jose.JSONWebKey) bool { return !k.IsPublic() }):
			v.fail("jwks must hold public keys only: remove the private parts", at("jwks")...)
		case c.Secret != "":
			v.fail("give a client a secret or jwks, not both", at("jwks")...)
		}
	}
	if c.Secret != "" && len(c.Secret) < clientsecret.MinLen {
		// The secret itself is never echoed.
		v.fail(fmt.Sprintf("client %q: secret must have at least %d characters (make one with: openssl rand -base64 32)", c.ID, clientsecret.MinLen), at("secret")...)
	}
	confidential := c.Secret != "" || len(c.JWKS) > 0
	if c.PKCEOptional && !confidential {
		v.fail("public clients must use PKCE: pkce_optional is for confidential clients", at("pkce_optional")...)
	}
	if a := c.IDTokenSignedResponseAlg; a != "" && !slices.Contains(signingAlgs, a) {
		v.fail(fmt.Sprintf("unknown id_token_signed_response_alg %q (want one of %s)", a, strings.Join(signingAlgs, ", ")), at("id_token_signed_response_alg")...)
	}
	has := func(g string) bool { return slices.Contains(c.GrantTypes, g) }
	if has("client_credentials") && !confidential {
		v.fail("client_credentials needs a confidential client: give it a secret or jwks", at("grant_types")...)
	}
	if has("refresh_token") && !has("authorization_code") {
		v.fail("refresh_token needs authorization_code: refresh tokens come from a user's grant", at("grant_types")...)
	}
	if has("authorization_code") && len(c.RedirectURIs) == 0 {
		v.fail("authorization_code needs at least one redirect URI", at("redirect_uris")...)
	}
	for i, u := range c.RedirectURIs {
		if msg := checkURI(u); msg != "" {
			v.fail(msg, at("redirect_uris", i)...)
		}
	}
	for i, u := range c.PostLogoutRedirectURIs {
		if msg := checkURI(u); msg != "" {
			v.fail(msg, at("post_logout_redirect_uris", i)...)
		}
	}
	for i, u := range c.Audiences {
		if msg := checkURI(u); msg != "" {
			v.fail(msg, at("audiences", i)...)
		}
	}
	for i, s := range c.Scopes {
		if !token.IsScopeToken(s) {
			v.fail(fmt.Sprintf("%q is not a scope token (RFC 6749 §3.3: no spaces, quotes or backslashes)", s), at("scopes", i)...)
		}
	}
	if c.AccessTokenTTL != 0 {
		v.checkTTL(c.AccessTokenTTL, c.AllowLongAccessTokens, at("access_token_ttl")...)
	}
	if c.AccessTokenFormat == "" {
		c.AccessTokenFormat = "jwt"
	} else if !slices.Contains(tokenFormats, c.AccessTokenFormat) {
		v.fail(fmt.Sprintf("unknown access_token_format %q (want jwt or opaque)", c.AccessTokenFormat), at("access_token_format")...)
	}

	if c.RefreshPreset == "" {
		switch {
		case !has("refresh_token"):
			c.RefreshPreset = "service"
		case !confidential:
			c.RefreshPreset = "spa"
		default:
			c.RefreshPreset = "web"
		}
	}
	preset, ok := Presets[c.RefreshPreset]
	switch {
	case !ok:
		v.fail(fmt.Sprintf("unknown refresh_preset %q (want web, mobile, spa or service)", c.RefreshPreset), at("refresh_preset")...)
	case c.RefreshPreset == "service" && has("refresh_token"):
		v.fail("the service preset issues no refresh tokens: drop refresh_token or pick web, mobile or spa", at("refresh_preset")...)
	}
	if c.RefreshPreset == "service" {
		if c.RefreshIdle != 0 || c.RefreshAbsolute != 0 {
			v.fail("refresh lifetimes make no sense without the refresh_token grant", at("refresh_idle")...)
		}
		return
	}
	if c.RefreshIdle == 0 {
		c.RefreshIdle = Duration(preset.Idle)
	}
	if c.RefreshAbsolute == 0 {
		c.RefreshAbsolute = Duration(preset.Absolute)
	}
	switch {
	case c.RefreshIdle < 0:
		v.fail("refresh_idle must be positive", at("refresh_idle")...)
	case c.RefreshAbsolute < 0:
		v.fail("refresh_absolute must be positive", at("refresh_absolute")...)
	case c.RefreshIdle > c.RefreshAbsolute:
		v.fail(fmt.Sprintf("refresh_idle %v is longer than refresh_absolute %v", time.Duration(c.RefreshIdle), time.Duration(c.RefreshAbsolute)), at("refresh_idle")...)
	}
	if c.RefreshRetryWindow == nil {
		d := Duration(DefaultRefreshRetryWindow)
		c.RefreshRetryWindow = &d
	} else if *c.RefreshRetryWindow < 0 || *c.RefreshRetryWindow > Duration(maxRetryWindow) {
		v.fail(fmt.Sprintf("refresh_retry_window must be between 0s (off) and %v", maxRetryWindow), at("refresh_retry_window")...)
	}
}

func (v *validator) checkTTL(d Duration, allowLong bool, path ...any) {
	switch {
	case d <= 0:
		v.fail("access_token_ttl must be positive", path...)
	case time.Duration(d) > MaxAccessTokenTTL && !allowLong:
		v.fail(fmt.Sprintf("access_token_ttl %v is over %v; access tokens should be short-lived (set allow_long_access_tokens: true to force it)", time.Duration(d), MaxAccessTokenTTL), path...)
	}
}

// checkURI returns what is wrong with a registered URI, or "".
func checkURI(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs():
		return fmt.Sprintf("%q is not an absolute URI", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("%q must not have a fragment (RFC 6749 §3.1.2)", s)
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		return fmt.Sprintf("%q has no host", s)
	}
	return ""
}
