package gates

// ParseJUnit reads a JUnit XML document exactly as the junit check does,
// so that a page showing the totals of stored evidence shows what a gate
// would judge, not the reading of a second parser.
func ParseJUnit(b []byte) (JUnitReport, error) { return parseJUnit(b) }

// ParseMetrics reads a metrics document exactly as the metric-rules check
// does: one JSON object, numbers as json.Number.
func ParseMetrics(b []byte) (map[string]any, error) { return parseMetrics(b) }
