package agentauthextension

import (
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/otel/attribute"

	"github.com/agentcost/agentcost/extension/agentauthextension/internal/metadata"
)

type extHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h extHost) GetExtensions() map[component.ID]component.Component { return h.exts }

func attributeKey(s string) attribute.Key { return attribute.Key(s) }

func toString(v any) string { return fmt.Sprint(v) }

func extensionSettings() extension.Settings {
	return extension.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings()}
}
