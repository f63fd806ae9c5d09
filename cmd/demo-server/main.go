// Command demo-server is the small program Warren's demo image runs and its
// tests talk to. Every HTTP request is answered with the container's hostname,
// its version (WARREN_DEMO_VERSION, default v1) and the client address the
// server saw, so tests can tell which backend answered and whether the
// source address survived load balancing. It also echoes UDP datagrams on the
// same port, prefixed with the hostname.
//
// /healthz answers 200 unless /tmp/unhealthy exists, so a test can make a
// task unhealthy with one exec.
//
// WARREN_DEMO_RESET_RATIO (0 to 1, default 0) makes it a broken release:
// that share of requests, /healthz excepted, is answered with a TCP reset
// instead of a reply, so health checks pass while clients see errors — what
// canary analysis must catch.
//
// It must stay stdlib-only and build with CGO_ENABLED=0: it is packed alone
// into a one-layer image.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	// Subcommands exist because the image has no shell: exec health checks
	// and tests run the binary itself inside the container.
	if len(os.Args) > 1 {
		os.Exit(subcommand(os.Args[1:]))
	}
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

// subcommand runs "healthcheck [URL]", "lookup NAME", "cat FILE", "stat FILE",
// "touch FILE" or "rm FILE".
func subcommand(args []string) int {
	switch args[0] {
	case "healthcheck":
		url := "http://127.0.0.1:" + envOr("PORT", "80") + "/healthz"
		if len(args) > 1 {
			url = args[1]
		}
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// The body goes to stdout: tests use it to see who answered.
		_, _ = io.Copy(os.Stdout, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintln(os.Stderr, resp.Status)
			return 1
		}
		return 0
	case "lookup":
		// Service discovery from inside a task: resolves through the
		// container's /etc/resolv.conf (the node's DNS server).
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: lookup NAME")
			return 2
		}
		addrs, err := net.LookupHost(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, a := range addrs {
			fmt.Println(a)
		}
		return 0
	case "cat", "stat":
		// Tests read a task's secrets as the task sees them.
		if len(args) != 2 {
			fmt.Fprintf(os.Stderr, "usage: %s FILE\n", args[0])
			return 2
		}
		if args[0] == "cat" {
			b, err := os.ReadFile(args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			_, _ = os.Stdout.Write(b)
			return 0
		}
		return statFile(args[1])
	case "touch", "rm":
		if len(args) != 2 {
			fmt.Fprintf(os.Stderr, "usage: %s FILE\n", args[0])
			return 2
		}
		var err error
		if args[0] == "touch" {
			err = os.WriteFile(args[1], nil, 0o644)
		} else {
			err = os.Remove(args[1])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown subcommand %q (healthcheck, lookup, cat, stat, touch, rm)\n", args[0])
	return 2
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type reply struct {
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
	Client   string `json:"client"`
	Path     string `json:"path"`
}

func run() error {
	port := envOr("PORT", "80")
	version := envOr("WARREN_DEMO_VERSION", "v1")
	unhealthyFile := envOr("WARREN_DEMO_UNHEALTHY_FILE", "/tmp/unhealthy")
	resetRatio, err := strconv.ParseFloat(envOr("WARREN_DEMO_RESET_RATIO", "0"), 64)
	if err != nil || resetRatio < 0 || resetRatio > 1 {
		return fmt.Errorf("WARREN_DEMO_RESET_RATIO %q: want a number from 0 to 1", os.Getenv("WARREN_DEMO_RESET_RATIO"))
	}
	host, _ := os.Hostname()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(unhealthyFile); err == nil {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if resetRatio > 0 && rand.Float64() < resetRatio {
			reset(w)
			return
		}
		rep := reply{Hostname: host, Version: version, Client: r.RemoteAddr, Path: r.URL.Path}
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(rep)
			return
		}
		fmt.Fprintf(w, "hostname: %s\nversion: %s\nclient: %s\n", rep.Hostname, rep.Version, rep.Client)
	})

	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return fmt.Errorf("listen tcp: %w", err)
	}
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return fmt.Errorf("listen udp: %w", err)
	}
	go udpEcho(pc, host)
	log.Printf("demo-server %s on %s (tcp+udp) as %s", version, port, host)

	srv := &http.Server{Handler: mux}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case s := <-sig:
		// Finish the requests in flight, as a well-behaved server does: the
		// platform stops sending new connections before the signal, so
		// this is all that is left.
		log.Printf("demo-server: %v, finishing requests in flight", s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
}

// reset drops the request's connection with a TCP RST (SO_LINGER 0).
func reset(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "reset: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func udpEcho(pc net.PacketConn, host string) {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			log.Printf("udp: %v", err)
			return
		}
		out := append([]byte(host+": "), buf[:n]...)
		if _, err := pc.WriteTo(out, addr); err != nil {
			log.Printf("udp reply to %s: %v", addr, err)
		}
	}
}
