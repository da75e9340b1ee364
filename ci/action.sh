#!/usr/bin/env bash
# The run step of action.yml: turns the action's inputs (INPUT_* variables)
# into one `stagegate ci` command. The CLI writes the step outputs, the job
# summary and the annotations itself; its exit code is the step's (0 ok,
# 1 error, 2 usage, 3 a gate refused).
set -euo pipefail

fail() {
	echo "::error title=stagegate action::$1"
	exit 2
}

bin="${INPUT_BINARY:-}"
if [[ -z "$bin" ]]; then
	bin="${STAGEGATE_BIN:-}"
fi
[[ -n "$bin" ]] || fail "no stagegate CLI: the build step did not run and no binary input was given"
[[ -n "${INPUT_NAME:-}" && -n "${INPUT_VERSION:-}" ]] || fail "the name and version inputs are required"
[[ -n "${INPUT_URL:-}" ]] || fail "the url input is required"

ref="$INPUT_NAME@$INPUT_VERSION"
command="${INPUT_COMMAND:-publish}"
args=(ci "$command")

# lines VAR FLAG: one flag per non-empty line of a multi-line input.
lines() {
	local line
	while IFS= read -r line || [[ -n "$line" ]]; do
		line="${line#"${line%%[![:space:]]*}"}"
		line="${line%"${line##*[![:space:]]}"}"
		if [[ -n "$line" ]]; then
			args+=("$2" "$line")
		fi
	done <<<"$1"
}

case "$command" in
publish)
	[[ -n "${INPUT_KIND:-}" ]] || fail "publish needs the kind input"
	args+=("$ref" --kind "$INPUT_KIND")
	lines "${INPUT_EVIDENCE:-}" --evidence
	lines "${INPUT_LABELS:-}" --label
	if [[ -n "${INPUT_SHA256SUMS:-}" ]]; then
		args+=(--sha256sums "$INPUT_SHA256SUMS")
	fi
	if [[ -n "${INPUT_PROMOTE_TO:-}" ]]; then
		args+=(--promote-to "$INPUT_PROMOTE_TO")
	fi
	if [[ -n "${INPUT_PROMOTE_TOKEN:-}" ]]; then
		args+=(--promote-token "$INPUT_PROMOTE_TOKEN")
	fi
	if [[ -n "${INPUT_PROMOTE_OIDC_AUDIENCE:-}" ]]; then
		args+=(--promote-oidc-audience "$INPUT_PROMOTE_OIDC_AUDIENCE")
	fi
	;;
promote)
	[[ -n "${INPUT_PROMOTE_TO:-}" ]] || fail "promote needs the promote-to input (the target environment)"
	args+=("$ref" --to "$INPUT_PROMOTE_TO")
	;;
approve)
	[[ -n "${INPUT_PROMOTE_TO:-}" ]] || fail "approve needs the promote-to input (the environment approved for)"
	args+=("$ref" --env "$INPUT_PROMOTE_TO")
	;;
*)
	fail "unknown command '$command': want publish, promote or approve"
	;;
esac

case "$command" in
publish | promote)
	if [[ -n "${INPUT_REASON:-}" ]]; then
		args+=(--reason "$INPUT_REASON")
	fi
	if [[ "${INPUT_DRY_RUN:-false}" == "true" ]]; then
		args+=(--dry-run)
	fi
	;;
approve)
	if [[ -n "${INPUT_REASON:-}" ]]; then
		args+=(--comment "$INPUT_REASON")
	fi
	;;
esac

if [[ -n "${INPUT_OIDC_AUDIENCE:-}" ]]; then
	args+=(--oidc-audience "$INPUT_OIDC_AUDIENCE")
fi
if [[ "${INPUT_QUIET:-false}" == "true" ]]; then
	args+=(--quiet)
fi

export STAGEGATE_URL="$INPUT_URL"
if [[ -n "${INPUT_TOKEN:-}" ]]; then
	export STAGEGATE_TOKEN="$INPUT_TOKEN"
fi

if [[ "$command" == publish ]]; then
	paths=()
	while IFS= read -r line || [[ -n "$line" ]]; do
		line="${line#"${line%%[![:space:]]*}"}"
		line="${line%"${line##*[![:space:]]}"}"
		if [[ -n "$line" ]]; then
			paths+=("$line")
		fi
	done <<<"${INPUT_PATHS:-}"
	((${#paths[@]} > 0)) || fail "publish needs the paths input: files or directories, one per line"
	# After --, a path that starts with '-' is still a path.
	args+=(-- "${paths[@]}")
fi

exec "$bin" "${args[@]}"
