package gates

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
)

// metricEnv declares the two variables rules may use.
func metricEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("metrics", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("current", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
}

// celProgram is a compiled, type-checked boolean rule.
type celProgram struct{ prg cel.Program }

// compileMetricExpr parses and type-checks expr at policy load, so a
// syntax or type error refuses the policy instead of failing a gate run.
func compileMetricExpr(expr string) (metricProgram, error) {
	env, err := metricEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s", strings.Join(strings.Fields(iss.Err().Error()), " "))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("expression yields %s, want bool", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.CostLimit(1_000_000), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, err
	}
	return celProgram{prg: prg}, nil
}

func (p celProgram) eval(ctx context.Context, metrics, current map[string]any) (bool, error) {
	out, _, err := p.prg.ContextEval(ctx, map[string]any{
		"metrics": metrics,
		"current": map[string]any{"metrics": current},
	})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("expression yielded %v, want bool", out.Type())
	}
	return b, nil
}
