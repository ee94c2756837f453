package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
)

// collectorFlags are --config and --extension: read the ledger and evidence settings from the
// collector's own configuration instead of copying connection flags.
type collectorFlags struct {
	config    *string
	extension *string
}

// addCollectorFlags registers --config and --extension on fs.
func addCollectorFlags(fs *flagSet) collectorFlags {
	return collectorFlags{
		config: fs.String("config", "", "the collector's configuration `FILE`: use its budgetledger extension's ledger (backend, "+
			"directory, redis endpoint, password, TLS, key prefix, time zone) and evidence directory; ${env:VAR} is expanded as the collector does"),
		extension: fs.String("extension", "", "the budgetledger extension's `ID` in --config, e.g. budgetledger/primary "+
			"(default: the only budgetledger extension)"),
	}
}

// set reports whether --config was given.
func (c collectorFlags) set() bool { return *c.config != "" }

// load reads the budgetledger extension's configuration from --config, as the collector would:
// the file resolved with the file and env providers (so ${env:REDIS_PASSWORD} works), the
// extension's defaults, then its Validate. Relative directories stay relative to the working
// directory, as for a collector started there.
func (c collectorFlags) load(ctx context.Context) (*budgetledgerextension.Config, error) {
	if *c.extension != "" && *c.config == "" {
		return nil, usageErr("--extension needs --config")
	}
	return loadLedgerExtension(ctx, *c.config, *c.extension)
}

// loadLedgerExtension returns the configuration of the budgetledger extension id (empty: the
// only one) in the collector configuration file path.
func loadLedgerExtension(ctx context.Context, path, id string) (*budgetledgerextension.Config, error) {
	resolver, err := confmap.NewResolver(confmap.ResolverSettings{
		URIs:              []string{"file:" + path},
		ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
		DefaultScheme:     "env",
	})
	if err != nil {
		return nil, ioErr(fmt.Errorf("--config %s: %w", path, err))
	}
	defer func() { _ = resolver.Shutdown(context.WithoutCancel(ctx)) }()
	conf, err := resolver.Resolve(ctx)
	if err != nil {
		return nil, &cliError{code: exitUsage, err: fmt.Errorf("--config %s: %w", path, err)}
	}
	factory := budgetledgerextension.NewFactory()
	typ := factory.Type().String()
	exts, err := conf.Sub("extensions")
	if err != nil {
		return nil, usageErr("--config %s: extensions: %v", path, err)
	}
	var candidates []string
	for key := range exts.ToStringMap() {
		if key == typ || strings.HasPrefix(key, typ+"/") {
			candidates = append(candidates, key)
		}
	}
	slices.Sort(candidates)
	switch {
	case id != "" && !slices.Contains(candidates, id):
		return nil, usageErr("--config %s: no extension %q (budgetledger extensions: %s)", path, id, listOrNone(candidates))
	case id == "" && len(candidates) == 1:
		id = candidates[0]
	case id == "" && len(candidates) == 0:
		return nil, usageErr("--config %s: no budgetledger extension under extensions", path)
	case id == "":
		return nil, usageErr("--config %s: several budgetledger extensions (%s): choose one with --extension", path, strings.Join(candidates, ", "))
	}
	sub, err := exts.Sub(id)
	if err != nil {
		return nil, usageErr("--config %s: extensions::%s: %v", path, id, err)
	}
	cfg := factory.CreateDefaultConfig().(*budgetledgerextension.Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, usageErr("--config %s: extensions::%s: %v", path, id, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, usageErr("--config %s: extensions::%s: %v", path, id, err)
	}
	return cfg, nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
