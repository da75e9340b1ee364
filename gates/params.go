package gates

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// lineError is a parameter problem at a known policy line.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func errAt(n *yaml.Node, format string, args ...any) error {
	return &lineError{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// decodeStrict decodes n into out after checking that every mapping key is
// a field of the target struct. yaml.v3's KnownFields only applies to a
// Decoder, not to Node.Decode, and walking the node keeps exact lines.
func decodeStrict(n *yaml.Node, out any) error {
	if err := checkKnown(n, reflect.TypeOf(out)); err != nil {
		return err
	}
	return n.Decode(out)
}

func checkKnown(n *yaml.Node, t reflect.Type) error {
	for n != nil && (n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode) {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	if n == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return errAt(n, "want a mapping, got %s", describeNode(n))
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				slices.Sort(names)
				return errAt(k, "unknown field %q (want one of %s)", truncate(k.Value, 40), strings.Join(names, ", "))
			}
			if seen[k.Value] {
				return errAt(k, "field %q given twice", k.Value)
			}
			seen[k.Value] = true
			if err := checkKnown(v, ft); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if err := checkKnown(c, t.Elem()); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				if err := checkKnown(n.Content[i], t.Elem()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.MappingNode:
		return "a mapping"
	default:
		return fmt.Sprintf("%q", truncate(n.Value, 40))
	}
}

// Duration is a policy duration: Go syntax ("90m", "36h") plus whole days
// ("7d"), which soak times and approval expiry are usually written in.
type Duration time.Duration

// UnmarshalYAML parses a duration scalar; negative durations are refused.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errAt(n, "want a duration such as 36h or 7d, got %s", describeNode(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return errAt(n, "%v", err)
	}
	*d = Duration(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid duration %q: want e.g. 30m, 36h or 7d", truncate(s, 40))
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, bad
	}
	return v, nil
}

// String formats d for reasons ("7d", "36h0m0s").
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", td/(24*time.Hour))
	}
	return td.String()
}

// truncate bounds untrusted text echoed in reasons, cutting on a rune
// boundary so the result stays valid UTF-8 when the input was.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max] + "…"
}

// noParams is the params type of checks that take none; decoding into it
// refuses any key.
type noParams struct{}
