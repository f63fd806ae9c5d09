// Command demo-rows is the application of the example stack nginx → app →
// PostgreSQL (docs/examples/pgstack, kernel-tests/cluster TestPostgresStack):
// a small HTTP server that stores rows in PostgreSQL and reads them back.
//
//	POST /rows         stores the request body as a row; answers {"id": N, ...}
//	GET  /rows/N       answers the row N
//	GET  /healthz      200 once the database answers
//
// Every answer carries the task's hostname and version (WARREN_DEMO_VERSION)
// so a test sees which replica, of which release, answered. The database is
// reached at DATABASE_HOST (default db, the Compose name) as DATABASE_USER
// with the password read from DATABASE_PASSWORD_FILE (a secret's file).
//
// It is packed alone into a one-layer image (`warren image pack --binary`),
// so it builds with CGO_ENABLED=0 and answers "healthcheck" itself: the image
// has no shell or curl for an exec health check.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck())
	}
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func healthcheck() int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + envOr("PORT", "8080") + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		fmt.Fprintf(os.Stderr, "%s: %s\n", resp.Status, b)
		return 1
	}
	return 0
}

// dsn builds the connection string; the password comes from a file so it
// never appears in the task's environment or spec.
func dsn() (string, error) {
	pw := ""
	if f := os.Getenv("DATABASE_PASSWORD_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("database password: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(envOr("DATABASE_USER", "postgres"), pw),
		Host:     envOr("DATABASE_HOST", "db") + ":" + envOr("DATABASE_PORT", "5432"),
		Path:     "/" + envOr("DATABASE_NAME", "postgres"),
		RawQuery: "sslmode=disable&connect_timeout=5",
	}
	return u.String(), nil
}

// Store is what the handlers need of the database.
type Store interface {
	Ping(ctx context.Context) error
	Insert(ctx context.Context, body string) (int64, error)
	Get(ctx context.Context, id int64) (string, error)
}

var errNoRow = errors.New("no such row")

type pgStore struct{ db *sql.DB }

func (s pgStore) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s pgStore) Insert(ctx context.Context, body string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO demo_rows (body) VALUES ($1) RETURNING id`, body).Scan(&id)
	return id, err
}

func (s pgStore) Get(ctx context.Context, id int64) (string, error) {
	var body string
	err := s.db.QueryRowContext(ctx, `SELECT body FROM demo_rows WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNoRow
	}
	return body, err
}

// ensureTable creates the table once the database answers; the server
// starts before (its health check says when the database is there).
func (s pgStore) ensureTable(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS demo_rows (id bigserial PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL DEFAULT now())`)
	return err
}

// Row is one answer.
type Row struct {
	ID       int64  `json:"id"`
	Body     string `json:"body"`
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
}

func handler(st Store, host, version string, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, r Row) {
		r.Hostname, r.Version = host, version
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(r)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !ready() {
			http.Error(w, "table not created yet", http.StatusServiceUnavailable)
			return
		}
		if err := st.Ping(ctx); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /rows", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, err := st.Insert(r.Context(), string(b))
		if err != nil {
			http.Error(w, "insert: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		reply(w, http.StatusCreated, Row{ID: id, Body: string(b)})
	})
	mux.HandleFunc("GET /rows/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "row id: must be a number", http.StatusBadRequest)
			return
		}
		body, err := st.Get(r.Context(), id)
		switch {
		case errors.Is(err, errNoRow):
			http.Error(w, fmt.Sprintf("row %d: not found", id), http.StatusNotFound)
		case err != nil:
			http.Error(w, "select: "+err.Error(), http.StatusServiceUnavailable)
		default:
			reply(w, http.StatusOK, Row{ID: id, Body: body})
		}
	})
	return mux
}

func run() error {
	port := envOr("PORT", "8080")
	version := envOr("WARREN_DEMO_VERSION", "v1")
	host, _ := os.Hostname()
	d, err := dsn()
	if err != nil {
		return err
	}
	db, err := sql.Open("postgres", d)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	db.SetMaxOpenConns(8)
	// Connections are short-lived so that a restarted database is found
	// again at once rather than through a pool of dead connections.
	db.SetConnMaxLifetime(30 * time.Second)
	st := pgStore{db}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var readyc = make(chan struct{})
	go func() {
		for {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := st.ensureTable(cctx)
			cancel()
			if err == nil {
				close(readyc)
				return
			}
			log.Printf("demo-rows: database not ready: %v", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	ready := func() bool {
		select {
		case <-readyc:
			return true
		default:
			return false
		}
	}
	srv := &http.Server{Addr: ":" + port, Handler: handler(st, host, version, ready), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("demo-rows %s on :%s as %s", version, port, host)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		// Finish the requests in flight: the platform stopped sending new
		// connections before the signal.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
