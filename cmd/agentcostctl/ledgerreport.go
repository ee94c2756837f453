package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"sort"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
)

// ledgerRow is one scope's spend in a window, read from the ledger.
type ledgerRow struct {
	Scope       string    `json:"scope"`
	ID          string    `json:"id"`
	Window      string    `json:"window"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	SpentUSD    string    `json:"spent_usd"`
	ReservedUSD string    `json:"reserved_usd"`
}

// ledgerReport is `report ledger`: chargeback by agent, team, model or run straight from the
// budget ledger's windows (what the exporter booked from spans), for the window holding --at.
func ledgerReport(e *env, path string, args []string) error {
	fs := newFlags(e, path, "(--config collector.yaml | --directory DIR | --redis HOST:PORT) [--by agent|team|model|run|fleet] [--window day] [--at TIME]", `
Chargeback from the budget ledger: the spend the costledger exporter booked from priced spans, per
agent, team, model, run or the fleet, in the calendar window (minute, hour, day, week, month; runs:
lifetime) that holds --at (default now), in the ledger's time zone. The embedded ledger is a file
one process may hold: stop the collector first, or point --redis at the shared Redis. Past windows
are kept until the ledger prunes them (two instances of each granularity).

--config reads the ledger's settings from the collector's configuration (its budgetledger
extension: backend, directory, Redis endpoint, password, TLS, key prefix, time zone), so a
password-protected or TLS Redis needs no extra flags.`)
	dir := fs.String("directory", "", "embedded ledger `DIR` (the budgetledger extension's directory)")
	redis := fs.String("redis", "", "Redis `HOST:PORT` of a redis-backed ledger")
	prefix := fs.String("key-prefix", "agentcost:", "Redis key `PREFIX`")
	by := fs.String("by", "agent", "`SCOPE`: agent, team, model, run or fleet")
	window := fs.String("window", "day", "`WINDOW`: minute, hour, day, week or month (runs: lifetime)")
	at := fs.String("at", "", "a `TIME` inside the window (RFC 3339, a date, or a duration before now); default now")
	tz := fs.String("tz", "UTC", "the ledger's time `ZONE` (the budgetledger extension's time_zone; with --config, its time_zone)")
	coll := addCollectorFlags(fs)
	out := fs.output("table", "csv", "json")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	n := 0
	for _, given := range []bool{*dir != "", *redis != "", coll.set()} {
		if given {
			n++
		}
	}
	if n != 1 {
		return usageErr("%s: give exactly one of --config, --directory and --redis", path)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	cfg := ledger.NewDefaultConfig()
	cfg.TimeZone = *tz
	if *redis != "" {
		cfg.Backend, cfg.Redis.Endpoint, cfg.Redis.KeyPrefix = ledger.BackendRedis, *redis, *prefix
	} else {
		cfg.Directory = *dir
	}
	if coll.set() {
		ext, err := coll.load(ctx)
		if err != nil {
			return err
		}
		cfg = ext.Config
		if flagGiven(fs, "tz") {
			cfg.TimeZone = *tz
		} else if cfg.TimeZone != "" {
			*tz = cfg.TimeZone
		}
	}
	scope, err := ledger.ParseScope(*by)
	if err != nil {
		return usageErr("--by: %v", err)
	}
	w, err := ledger.ParseWindow(*window)
	if err != nil {
		return usageErr("--window: %v", err)
	}
	if scope == ledger.ScopeRun {
		w = ledger.Lifetime
	}
	loc, err := loadTZ(*tz)
	if err != nil {
		return err
	}
	now := time.Now().In(loc)
	when := now
	if *at != "" {
		if when, err = parseTimeArg("at", *at, now, loc); err != nil {
			return err
		}
	}
	l, err := ledger.Open(ctx, cfg, ledger.Settings{})
	if err != nil {
		return ioErr(fmt.Errorf("opening the ledger: %w", err))
	}
	defer l.Close()
	snap, err := l.Snapshot(ctx, when)
	if err != nil {
		return ioErr(fmt.Errorf("reading the ledger: %w", err))
	}
	var rows []ledgerRow
	var total money.Nanos
	for _, st := range snap.States {
		if st.Scope != scope || st.Window != w {
			continue
		}
		rows = append(rows, ledgerRow{Scope: string(st.Scope), ID: st.ID, Window: string(st.Window),
			WindowStart: st.Start, WindowEnd: st.End, SpentUSD: st.Spent.String(), ReservedUSD: st.Reserved.String()})
		total += st.Spent
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	switch *out {
	case "json":
		err = writeJSON(e.stdout, map[string]any{"rows": rows, "total_spent_usd": total.String(), "truncated": snap.Truncated})
	case "csv":
		cw := csv.NewWriter(e.stdout)
		_ = cw.Write([]string{"scope", "id", "window", "window_start", "spent_usd", "reserved_usd"})
		for _, r := range rows {
			_ = cw.Write([]string{r.Scope, csvSafe(r.ID), r.Window, r.WindowStart.Format(time.RFC3339), r.SpentUSD, r.ReservedUSD})
		}
		cw.Flush()
		err = cw.Error()
	default:
		tw := newTable(e.stdout)
		fmt.Fprintf(tw, "%s\tWINDOW\tSTART\tSPENT USD\tRESERVED USD\n", scope)
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(r.ID), r.Window, r.WindowStart.Format(time.RFC3339), r.SpentUSD, r.ReservedUSD)
		}
		fmt.Fprintf(tw, "TOTAL\t\t\t%s\t\n", total)
		err = tw.Flush()
	}
	if err != nil {
		return ioErr(err)
	}
	if snap.Truncated {
		fmt.Fprintln(e.stderr, "warning: the ledger holds more scopes than its snapshot_limit; the list is incomplete")
	}
	return nil
}
