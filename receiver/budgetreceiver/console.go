package budgetreceiver

import (
	"embed"
	"io/fs"
	"net/http"
)

// ConsoleConfig is the reviewer console: a few static pages, embedded in the binary, that call the
// decision API from the same origin.
type ConsoleConfig struct {
	// Enabled serves the console at /console/ on the decision API's endpoint (default false). The
	// pages themselves need no token; every API call they make carries the reviewer token the user
	// signs in with (kept in the tab's session storage), so the API's roles apply unchanged.
	Enabled bool `mapstructure:"enabled"`
}

// PathConsole is where the console is served.
const PathConsole = "/console/"

// consoleCSP is the console's Content-Security-Policy: its own scripts and styles only, no inline
// code, no framing, no plugins, API calls to its own origin.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

//go:embed console
var consoleFiles embed.FS

// routeConsole serves the embedded console at /console/ (GET and HEAD only), with a strict
// Content-Security-Policy, no framing and no sniffing.
func (s *server) routeConsole(mux *http.ServeMux) {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(PathConsole, http.FileServer(http.FS(sub)))
	mux.HandleFunc("/console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, PathConsole, http.StatusMovedPermanently)
	})
	mux.HandleFunc(PathConsole, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
