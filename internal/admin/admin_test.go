package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

func TestProblemOf_MapsStoreAndValidationErrors(t *testing.T) {
	for _, c := range []struct {
		err        error
		status     int
		retryAfter bool
		fields     []string
	}{
		{fmt.Errorf("get: %w", storage.ErrNotFound), 404, false, nil},
		{fmt.Errorf("create: %w", storage.ErrConflict), 409, false, nil},
		{fmt.Errorf("read: %w", storage.ErrUnavailable), 503, true, nil},
		{context.DeadlineExceeded, 503, true, nil},
		{registry.Errors{{Path: []any{"redirect_uris", 0}, Msg: "bad"}, {Path: []any{"scopes", 2}, Msg: "bad"}}, 400, false, []string{"redirect_uris[0]", "scopes[2]"}},
		{errPrecondition, 412, false, nil},
		{errors.New("boom"), 500, false, nil},
	} {
		p, _ := problemOf(c.err)
		w := httptest.NewRecorder()
		writeProblem(w, p)
		var fields []string
		for _, e := range p.Errors {
			fields = append(fields, e.Field)
		}
		if w.Code != c.status || w.Header().Get("Content-Type") != "application/problem+json" ||
			(w.Header().Get("Retry-After") != "") != c.retryAfter || !slices.Equal(fields, c.fields) {
			t.Errorf("%v: %d %v %s", c.err, w.Code, w.Header(), w.Body)
		}
		if strings.Contains(w.Body.String(), "boom") {
			t.Errorf("an internal error's text reached the answer: %s", w.Body)
		}
	}
}

func TestDecode_RefusesUnknownFieldsTrailingDataAndBigBodies(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	for _, c := range []struct {
		in     string
		status int
		field  string
	}{
		{`{"name":"x","n":1}`, 0, ""},
		{`{"name":"x","colour":"red"}`, 400, "colour"},
		{`{"n":"one"}`, 400, "n"},
		{`{"name":"x"} {"name":"y"}`, 400, ""},
		{`{"name":`, 400, ""},
		{``, 400, ""},
		{`{"name":"` + strings.Repeat("x", maxBody) + `"}`, 413, ""},
	} {
		r := httptest.NewRequest("PUT", "/", strings.NewReader(c.in))
		var v body
		err := decode(httptest.NewRecorder(), r, &v, false)
		if c.status == 0 {
			if err != nil {
				t.Errorf("%.40s: %v", c.in, err)
			}
			continue
		}
		p, _ := problemOf(err)
		if p.Status != c.status || (c.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != c.field)) {
			t.Errorf("%.40s: %+v", c.in, p)
		}
	}
}

func TestPageOf_CursorAndLimit(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	id := func(s string) string { return s }
	var got []string
	q := pageQuery{limit: 2}
	for range 10 {
		p := pageOf(all, q, id, id)
		got = append(got, p.Items...)
		if p.Next == "" {
			break
		}
		q.after = p.Next
	}
	if !slices.Equal(got, all) {
		t.Fatalf("paged %v", got)
	}
	if p := pageOf(all, pageQuery{limit: 5}, id, id); p.Next != "" || len(p.Items) != 5 {
		t.Fatalf("one full page: %+v", p)
	}
	for _, bad := range []string{"0", "501", "x", "-3"} {
		if _, err := pageQueryOf(httptest.NewRequest("GET", "/?limit="+bad, nil)); err == nil {
			t.Errorf("limit=%s accepted", bad)
		}
	}
}

func TestIfMatch(t *testing.T) {
	req := func(h string) *http.Request {
		r := httptest.NewRequest("PUT", "/", nil)
		if h != "" {
			r.Header.Set("If-Match", h)
		}
		return r
	}
	for _, c := range []struct {
		header  string
		current string
		exists  bool
		ok      bool
	}{
		{"", `"a"`, true, true},
		{"", "", false, true},
		{`"a"`, `"a"`, true, true},
		{`"b", "a"`, `"a"`, true, true},
		{`"b"`, `"a"`, true, false},
		{`*`, `"a"`, true, true},
		{`*`, "", false, false},
		{`"a"`, "", false, false},
	} {
		if got := ifMatch(req(c.header), c.current, c.exists); got != c.ok {
			t.Errorf("If-Match %q on %q (exists %v) = %v", c.header, c.current, c.exists, got)
		}
	}
}
