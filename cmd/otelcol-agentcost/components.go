package main

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckv2extension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/agentcost/agentcost/exporter/costledgerexporter"
	"github.com/agentcost/agentcost/extension/agentauthextension"
	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/processor/agentcostprocessor"
	"github.com/agentcost/agentcost/receiver/budgetreceiver"
)

// ownModule is the gomod entry builder-config.yaml gives this repository's own components.
const ownModule = "github.com/agentcost/agentcost v0.1.0"

// components returns the factories of the distribution, in the shape ocb generates from
// builder-config.yaml (components_test.go keeps the two in step).
func components() (otelcol.Factories, error) {
	var err error
	factories := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}

	factories.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](
		agentauthextension.NewFactory(),
		budgetledgerextension.NewFactory(),
		filestorage.NewFactory(),
		healthcheckv2extension.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ExtensionModules = map[component.Type]string{
		agentauthextension.NewFactory().Type():     ownModule,
		budgetledgerextension.NewFactory().Type():  ownModule,
		filestorage.NewFactory().Type():            "github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage v0.165.1",
		healthcheckv2extension.NewFactory().Type(): "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckv2extension v0.165.1",
	}

	factories.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		budgetreceiver.NewFactory(),
		otlpreceiver.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ReceiverModules = map[component.Type]string{
		budgetreceiver.NewFactory().Type(): ownModule,
		otlpreceiver.NewFactory().Type():   "go.opentelemetry.io/collector/receiver/otlpreceiver v0.165.0",
	}

	factories.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		agentcostprocessor.NewFactory(),
		batchprocessor.NewFactory(),
		memorylimiterprocessor.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ProcessorModules = map[component.Type]string{
		agentcostprocessor.NewFactory().Type():     ownModule,
		batchprocessor.NewFactory().Type():         "go.opentelemetry.io/collector/processor/batchprocessor v0.165.0",
		memorylimiterprocessor.NewFactory().Type(): "go.opentelemetry.io/collector/processor/memorylimiterprocessor v0.165.0",
	}

	factories.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		costledgerexporter.NewFactory(),
		otlpexporter.NewFactory(),
		otlphttpexporter.NewFactory(),
		debugexporter.NewFactory(),
		prometheusexporter.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ExporterModules = withAliases(factories.Exporters, map[component.Type]string{
		costledgerexporter.NewFactory().Type(): ownModule,
		otlpexporter.NewFactory().Type():       "go.opentelemetry.io/collector/exporter/otlpexporter v0.165.0",
		otlphttpexporter.NewFactory().Type():   "go.opentelemetry.io/collector/exporter/otlphttpexporter v0.165.0",
		debugexporter.NewFactory().Type():      "go.opentelemetry.io/collector/exporter/debugexporter v0.165.0",
		prometheusexporter.NewFactory().Type(): "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter v0.165.1",
	})

	factories.Connectors, err = otelcol.MakeFactoryMap[connector.Factory]()
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ConnectorModules = map[component.Type]string{}
	return factories, nil
}

// withAliases adds the deprecated alias types (otlp, otlphttp) of the factories to the module map,
// as ocb's generated code does.
func withAliases[T component.Factory](factories map[component.Type]T, modules map[component.Type]string) map[component.Type]string {
	type aliasProvider interface{ DeprecatedAlias() component.Type }
	for typ, f := range factories {
		if ap, ok := any(f).(aliasProvider); ok && ap.DeprecatedAlias().String() != "" {
			modules[ap.DeprecatedAlias()] = modules[typ]
		}
	}
	return modules
}
