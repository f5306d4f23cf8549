package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"
)

// RFC 8725 §3.1: accept only asymmetric algorithms. none and HS* are left out on
// purpose: a JWKS holds public keys, and "verifying" an HMAC with a public key is
// the classic algorithm-confusion attack.
var inspectAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.EdDSA, jose.RS256, jose.PS256, jose.ES384,
	jose.RS384, jose.PS384, jose.ES512, jose.RS512, jose.PS512,
}

const (
	// clockSkew is how far exp and nbf may be off before a token is refused.
	clockSkew = 60 * time.Second
	// maxDocument bounds what we read from the issuer; discovery and JWKS are small.
	maxDocument = 1 << 20
)

func newTokenCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Work with tokens",
	}
	cmd.AddCommand(newTokenInspectCmd(stdout))
	return cmd
}

func newTokenInspectCmd(stdout io.Writer) *cobra.Command {
	var issuer string
	cmd := &cobra.Command{
		Use:   "inspect TOKEN",
		Short: "Decode a JWT access token and, with --issuer, check it against the issuer's keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var iss string
			if issuer != "" {
				var err error
				if iss, err = parseIssuer(issuer); err != nil {
					return err
				}
			}
			t, err := decodeJWT(strings.TrimSpace(args[0]))
			if err != nil {
				return err
			}
			if err := t.print(stdout); err != nil {
				return err
			}
			if iss == "" {
				_, err := fmt.Fprintln(stdout, "Decoded only: nothing above is verified. Pass --issuer to check it.")
				return err
			}
			// Each inspection gets its own client: no shared state, and a bound on a slow issuer.
			client := &http.Client{Timeout: 10 * time.Second}
			jwksURI, keys, err := fetchIssuerKeys(cmd.Context(), client, iss)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Checked against %s (keys from %s):\n", iss, jwksURI)
			if failed := t.check(stdout, iss, keys, time.Now()); failed != "" {
				return fmt.Errorf("token is not valid: %s", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&issuer, "issuer", "", "issuer URL whose published keys the token is checked against, e.g. http://127.0.0.1:8080/realms/dev")
	return cmd
}

// decodedJWT is a JWS compact token split into its parts, none of them trusted.
type decodedJWT struct {
	compact string
	header  []byte // the protected header's JSON, as sent
	payload []byte // the claims' JSON, as sent
	claims  map[string]json.RawMessage
	alg     string
	kid     string
	typ     string
	hasTyp  bool
}

// decodeJWT splits and decodes the token by hand rather than through go-jose: it
// must also show tokens go-jose rightly refuses to parse (alg none, HS256), which
// are the ones most worth looking at. Nothing here checks anything.
func decodeJWT(token string) (*decodedJWT, error) {
	// Errors name the part that is wrong, never the token: it may be a live credential.
	notJWT := func(why string) error {
		return fmt.Errorf("not a JWT (%s); opaque tokens such as lk_at_... can only be checked through introspection (RFC 7662)", why)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		if len(parts) == 5 {
			return nil, notJWT("five parts: an encrypted JWE, which only its recipient can read")
		}
		return nil, notJWT("a JWS has three dot-separated parts")
	}
	t := &decodedJWT{compact: token}
	var err error
	if t.header, err = base64.RawURLEncoding.DecodeString(parts[0]); err != nil {
		return nil, notJWT("the header is not base64url")
	}
	// A map, not a struct: a header with odd field types should still be shown.
	var h map[string]any
	if err := json.Unmarshal(t.header, &h); err != nil || h == nil {
		return nil, notJWT("the header is not a JSON object")
	}
	t.alg, _ = h["alg"].(string)
	t.kid, _ = h["kid"].(string)
	t.typ, t.hasTyp = h["typ"].(string)
	if t.payload, err = base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
		return nil, notJWT("the payload is not base64url")
	}
	if err := json.Unmarshal(t.payload, &t.claims); err != nil || t.claims == nil {
		return nil, notJWT("the payload is not a JSON object of claims")
	}
	return t, nil
}

func (t *decodedJWT) print(w io.Writer) error {
	var out bytes.Buffer
	for _, part := range []struct {
		title string
		json  []byte
	}{{"Header", t.header}, {"Claims", t.payload}} {
		out.WriteString(part.title + ":\n")
		// Indent keeps the JSON as sent (numbers, key order, escapes), so a
		// control character in a claim stays escaped instead of reaching the terminal.
		if err := json.Indent(&out, part.json, "", "  "); err != nil {
			return err
		}
		out.WriteString("\n")
	}
	_, err := w.Write(out.Bytes())
	return err
}

// check prints one line per check and returns the first failure, or "" when all pass.
func (t *decodedJWT) check(w io.Writer, issuer string, keys *jose.JSONWebKeySet, now time.Time) string {
	type check struct {
		name string
		run  func() (string, error)
	}
	checks := []check{
		{"signature", func() (string, error) { return t.checkSignature(keys) }},
		{"exp", func() (string, error) { return t.checkExp(now) }},
	}
	if _, ok := t.claims["nbf"]; ok { // nbf is optional (RFC 7519 §4.1.5)
		checks = append(checks, check{"nbf", func() (string, error) { return t.checkNbf(now) }})
	}
	checks = append(checks,
		check{"iss", func() (string, error) { return t.checkIss(issuer) }},
		check{"typ", t.checkTyp},
	)
	first := ""
	for _, c := range checks {
		note, err := c.run()
		switch {
		case err != nil:
			fmt.Fprintf(w, "  %-10s FAILED: %v\n", c.name+":", err)
			if first == "" {
				first = c.name + ": " + err.Error()
			}
		case note == "":
			fmt.Fprintf(w, "  %-10s ok\n", c.name+":")
		default:
			fmt.Fprintf(w, "  %-10s ok: %s\n", c.name+":", note)
		}
	}
	return first
}

// checkSignature pins the algorithm to the key's own alg (RFC 8725 §2.1, §3.1):
// the token's header chooses the key by kid, never how it is verified.
func (t *decodedJWT) checkSignature(keys *jose.JSONWebKeySet) (string, error) {
	jws, err := jose.ParseSignedCompact(t.compact, inspectAlgorithms)
	if err != nil {
		switch {
		case strings.EqualFold(t.alg, "none"):
			return "", errors.New(`alg "none": the token is not signed at all`)
		case strings.HasPrefix(strings.ToUpper(t.alg), "HS"):
			return "", fmt.Errorf("alg %q is a shared-secret MAC, which public keys cannot verify (algorithm confusion)", t.alg)
		case !slices.Contains(inspectAlgorithms, jose.SignatureAlgorithm(t.alg)):
			return "", fmt.Errorf("alg %q is not an accepted signature algorithm", t.alg)
		}
		return "", fmt.Errorf("malformed JWS: %v", err)
	}
	if t.kid == "" {
		return "", errors.New("the header has no kid, so no key can be chosen")
	}
	var key *jose.JSONWebKey
	for _, k := range keys.Key(t.kid) {
		if k.Use != "enc" {
			key = &k
			break
		}
	}
	switch {
	case key == nil:
		return "", fmt.Errorf("no signing key with kid %q in the issuer's JWKS", t.kid)
	case key.Algorithm == "":
		return "", fmt.Errorf("key %q has no alg, so the algorithm cannot be pinned", t.kid)
	case key.Algorithm != t.alg:
		return "", fmt.Errorf("the token says alg %q but key %q is for %q", t.alg, t.kid, key.Algorithm)
	case !key.IsPublic():
		return "", fmt.Errorf("the issuer's JWKS publishes private key material for key %q", t.kid)
	}
	if _, err := jws.Verify(key); err != nil {
		return "", fmt.Errorf("does not verify with key %q", t.kid)
	}
	return fmt.Sprintf("%s, key %q", t.alg, t.kid), nil
}

func (t *decodedJWT) checkExp(now time.Time) (string, error) {
	exp, ok, err := t.numericDate("exp")
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", errors.New("no exp claim (RFC 9068 §2.2 requires one)")
	case now.After(exp.Add(clockSkew)):
		return "", fmt.Errorf("expired %s ago (at %s)", since(exp, now), stamp(exp))
	case now.After(exp):
		return fmt.Sprintf("expired %s ago, within the %s clock-skew allowance", since(exp, now), clockSkew), nil
	}
	return fmt.Sprintf("expires in %s (at %s)", since(now, exp), stamp(exp)), nil
}

func (t *decodedJWT) checkNbf(now time.Time) (string, error) {
	nbf, _, err := t.numericDate("nbf")
	switch {
	case err != nil:
		return "", err
	case now.Add(clockSkew).Before(nbf):
		return "", fmt.Errorf("not valid for another %s (from %s)", since(now, nbf), stamp(nbf))
	}
	return "", nil
}

func (t *decodedJWT) checkIss(issuer string) (string, error) {
	var iss string
	if raw, ok := t.claims["iss"]; !ok || json.Unmarshal(raw, &iss) != nil {
		return "", errors.New("no iss claim, or it is not a string")
	}
	if iss != issuer {
		return "", fmt.Errorf("issued by %q, not %q", iss, issuer)
	}
	return "", nil
}

// checkTyp tells access tokens from other JWTs (RFC 9068 §2.1, RFC 8725 §3.11):
// an ID token must never pass as an access token.
func (t *decodedJWT) checkTyp() (string, error) {
	// Media type names are case-insensitive (RFC 7515 §4.1.9).
	switch {
	case !t.hasTyp:
		return "", errors.New(`no typ header; an RFC 9068 access token has "at+jwt"`)
	case strings.EqualFold(t.typ, "at+jwt"), strings.EqualFold(t.typ, "application/at+jwt"):
		return t.typ, nil
	case strings.EqualFold(t.typ, "JWT"):
		return "", errors.New(`typ is "JWT", as ID tokens and other plain JWTs have; an RFC 9068 access token has "at+jwt"`)
	}
	return "", fmt.Errorf(`typ is %q, not an RFC 9068 access token ("at+jwt")`, t.typ)
}

// numericDate reads a NumericDate claim (RFC 7519 §2); ok is false when it is absent.
func (t *decodedJWT) numericDate(name string) (time.Time, bool, error) {
	raw, ok := t.claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var secs float64
	// 1e11 seconds is year 5138: anything larger is nonsense and would overflow time.Time.
	if err := json.Unmarshal(raw, &secs); err != nil || secs < 0 || secs > 1e11 {
		return time.Time{}, false, fmt.Errorf("%s is not a NumericDate: %s", name, raw)
	}
	return time.Unix(int64(secs), 0).UTC(), true, nil
}

func since(from, to time.Time) time.Duration { return to.Sub(from).Round(time.Second) }

// stamp formats a time for people; "-" when it is unset.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// parseIssuer accepts an absolute http(s) URL and drops a trailing slash, as
// issuers are compared as exact strings (RFC 8414 §3.3).
func parseIssuer(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("--issuer %q: want an http(s) URL such as https://id.example/realms/main", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}

// fetchIssuerKeys finds the issuer's JWKS through its discovery document, trying
// OpenID Connect Discovery first and RFC 8414 metadata if that is not there.
func fetchIssuerKeys(ctx context.Context, client *http.Client, issuer string) (string, *jose.JSONWebKeySet, error) {
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	docURL := issuer + "/.well-known/openid-configuration"
	status, err := getJSON(ctx, client, docURL, &meta)
	if status == http.StatusNotFound {
		docURL = issuer + "/.well-known/oauth-authorization-server"
		status, err = getJSON(ctx, client, docURL, &meta)
	}
	if err != nil {
		return "", nil, err
	}
	// RFC 8414 §3.3, OIDC Discovery §4.3: a document naming another issuer must not
	// be used, or its keys could vouch for tokens it never issued.
	if meta.Issuer != issuer {
		return "", nil, fmt.Errorf("%s names issuer %q, not %q", docURL, meta.Issuer, issuer)
	}
	if meta.JWKSURI == "" {
		return "", nil, fmt.Errorf("%s has no jwks_uri", docURL)
	}
	var keys jose.JSONWebKeySet
	if _, err := getJSON(ctx, client, meta.JWKSURI, &keys); err != nil {
		return "", nil, err
	}
	return meta.JWKSURI, &keys, nil
}

// getJSON fetches url into v. It returns the HTTP status (0 when there was no
// answer) so the caller can tell a missing document from a broken one.
func getJSON(ctx context.Context, client *http.Client, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %v", url, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		// The error already reads `Get "URL": ...`.
		return 0, fmt.Errorf("cannot reach the issuer: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxDocument+1))
	switch {
	case err != nil:
		return res.StatusCode, fmt.Errorf("GET %s: %v", url, err)
	case len(body) > maxDocument:
		return res.StatusCode, fmt.Errorf("GET %s: the answer is over %d bytes", url, maxDocument)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return res.StatusCode, fmt.Errorf("GET %s: not the JSON expected: %v", url, err)
	}
	return res.StatusCode, nil
}
