package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

type memStore struct {
	rows []string
	down bool
}

func (m *memStore) Ping(context.Context) error {
	if m.down {
		return errors.New("connection refused")
	}
	return nil
}

func (m *memStore) Insert(_ context.Context, body string) (int64, error) {
	if m.down {
		return 0, errors.New("connection refused")
	}
	m.rows = append(m.rows, body)
	return int64(len(m.rows)), nil
}

func (m *memStore) Get(_ context.Context, id int64) (string, error) {
	if m.down {
		return "", errors.New("connection refused")
	}
	if id < 1 || id > int64(len(m.rows)) {
		return "", errNoRow
	}
	return m.rows[id-1], nil
}

func TestHandler(t *testing.T) {
	st := &memStore{}
	ready := false
	h := handler(st, "app-1", "v2", func() bool { return ready })
	do := func(method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	for _, step := range []struct {
		name         string
		before       func()
		method, path string
		body         string
		code         int
		has          string
	}{
		{name: "unhealthy until the table exists", method: "GET", path: "/healthz", code: http.StatusServiceUnavailable, has: "table"},
		{name: "healthy then", before: func() { ready = true }, method: "GET", path: "/healthz", code: http.StatusOK},
		{name: "a row is stored", method: "POST", path: "/rows", body: "hello", code: http.StatusCreated, has: `"id":1`},
		{name: "and read back, with who answered", method: "GET", path: "/rows/1", code: http.StatusOK, has: `{"id":1,"body":"hello","hostname":"app-1","version":"v2"}`},
		{name: "an unknown row", method: "GET", path: "/rows/7", code: http.StatusNotFound, has: "row 7: not found"},
		{name: "a row id that is not a number", method: "GET", path: "/rows/x", code: http.StatusBadRequest},
		{name: "database gone: unhealthy", before: func() { st.down = true }, method: "GET", path: "/healthz", code: http.StatusServiceUnavailable, has: "database"},
		{name: "and writes fail visibly", method: "POST", path: "/rows", body: "x", code: http.StatusServiceUnavailable, has: "insert"},
	} {
		if step.before != nil {
			step.before()
		}
		code, body := do(step.method, step.path, step.body)
		if code != step.code || !strings.Contains(body, step.has) {
			t.Errorf("%s: %s %s = %d %q, want %d containing %q", step.name, step.method, step.path, code, body, step.code, step.has)
		}
	}
}

func TestDSNReadsThePasswordFile(t *testing.T) {
	f := t.TempDir() + "/pw"
	if err := writeFile(f, "p@ss:w/rd\n"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_PASSWORD_FILE", f)
	t.Setenv("DATABASE_HOST", "db")
	d, err := dsn()
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://postgres:p%40ss%3Aw%2Frd@db:5432/postgres?sslmode=disable&connect_timeout=5"; d != want {
		t.Errorf("dsn %q, want %q", d, want)
	}
	t.Setenv("DATABASE_PASSWORD_FILE", f+".missing")
	if _, err := dsn(); err == nil || !strings.Contains(err.Error(), "database password") {
		t.Errorf("missing password file: %v", err)
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }
