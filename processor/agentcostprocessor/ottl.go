package agentcostprocessor

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/ottlfuncs"
)

// ottlConverters are the functions field overrides and the condition may call: OTTL's standard
// converters (Concat, Int, ToLowerCase, ...). Editors (set, delete_key) are not offered: overrides
// read values, they never change the span.
func ottlConverters() map[string]ottl.Factory[*ottlspan.TransformContext] {
	return ottlfuncs.StandardConverters[*ottlspan.TransformContext]()
}
