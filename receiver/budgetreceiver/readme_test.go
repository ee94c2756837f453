package budgetreceiver

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"
	"go.yaml.in/yaml/v3"
)

// readme returns the receiver's README.
func readme(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestREADMEExample loads the README's example configuration of the receiver and validates it.
func TestREADMEExample(t *testing.T) {
	doc := readme(t)
	_, after, ok := strings.Cut(doc, "## Example")
	if !ok {
		t.Fatal("README has no Example section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("the Example section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	var top map[string]any
	if err := yaml.Unmarshal([]byte(block), &top); err != nil {
		t.Fatalf("the example is not YAML: %v", err)
	}
	receivers, _ := top["receivers"].(map[string]any)
	raw, ok := receivers["budget"].(map[string]any)
	if !ok {
		t.Fatal("the example has no receivers.budget")
	}
	cfg := createDefaultConfig().(*Config)
	if err := confmap.NewFromStringMap(raw).Unmarshal(cfg); err != nil {
		t.Fatalf("the example does not unmarshal: %v", err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
}

// TestREADMEConfigTable: every key of the receiver's own configuration has a row in the README's
// configuration table, and the rows of the HTTP hardening keys state the defaults the factory sets.
func TestREADMEConfigTable(t *testing.T) {
	doc := readme(t)
	for _, key := range configKeys(reflect.TypeFor[Config](), "") {
		if !strings.Contains(doc, "| `"+key) {
			t.Errorf("README configuration table has no row for %s", key)
		}
	}
	cfg := createDefaultConfig().(*Config)
	for key, def := range map[string]time.Duration{
		"read_header_timeout":        cfg.ReadHeaderTimeout,
		"read_timeout":               cfg.ReadTimeout,
		"ledger_unavailable.timeout": cfg.LedgerUnavailable.Timeout,
	} {
		if row := tableRow(doc, key); def == 0 || !strings.Contains(row, "`"+shortDuration(def)+"`") {
			t.Errorf("README row of %s %q does not state the default %s", key, row, shortDuration(def))
		}
	}
	if row := tableRow(doc, "max_in_flight_per_caller"); cfg.MaxInFlightPerCaller != 0 || !strings.Contains(row, "`0`") {
		t.Errorf("max_in_flight_per_caller default %d, README row %q", cfg.MaxInFlightPerCaller, row)
	}
}

// shortDuration formats d as YAML would be written: 5s, 10s, 500ms, 1m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// tableRow returns the README table row of key.
func tableRow(doc, key string) string {
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "| `"+key+"`") {
			return line
		}
	}
	return ""
}

// configKeys lists the dotted mapstructure keys of t, descending into nested settings structs but
// not into squashed (confighttp) ones or into values such as component IDs and token lists.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || strings.Contains(tag, "squash") || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		key := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && hasTaggedFields(ft) {
			keys = append(keys, configKeys(ft, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

func hasTaggedFields(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("mapstructure") != "" {
			return true
		}
	}
	return false
}

// TestREADMENotificationsExample loads the notifications example of the README and validates it.
func TestREADMENotificationsExample(t *testing.T) {
	_, after, ok := strings.Cut(readme(t), "## Notifications")
	if !ok {
		t.Fatal("README has no Notifications section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("the Notifications section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	var top map[string]any
	if err := yaml.Unmarshal([]byte(block), &top); err != nil {
		t.Fatalf("the example is not YAML: %v", err)
	}
	raw, _ := top["receivers"].(map[string]any)["budget"].(map[string]any)
	cfg := createDefaultConfig().(*Config)
	if err := confmap.NewFromStringMap(raw).Unmarshal(cfg); err != nil {
		t.Fatalf("the example does not unmarshal: %v", err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	n := cfg.Notifications
	if len(n.Webhooks) != 2 || n.Webhooks[1].Format != FormatSlack || n.Webhooks[1].Timeout != 5*time.Second ||
		n.Webhooks[0].SecretFile != "./webhook.secret" || n.Retry.MaxElapsedTime != time.Hour || !n.Retry.Enabled {
		t.Fatalf("notifications %+v", n)
	}
}
