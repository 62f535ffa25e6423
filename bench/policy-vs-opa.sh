#!/usr/bin/env bash
# Policy evaluation of the typical evidence document with every default rule:
# wardgate's engine in process (prepared query; BenchmarkEvaluate, go test
# -cpu 1, median of 5) against one `opa eval` process per decision (OPA
# v1.22.3, the same policies, data and input; median of N runs).
# Target (issue 4): wardgate at least 20,000 decisions/s on one core.
# Two reference figures say what OPA's evaluator allows: `opa bench` of the
# same query (OPA alone, input parsed once) and BenchmarkEvaluateNoopRules,
# wardgate's whole evaluation with rules that never fire (the floor).
# Usage: bench/policy-vs-opa.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
opa=$(command -v opa || echo "$(go env GOPATH)/bin/opa")
if [ ! -x "$opa" ] || ! "$opa" version 2>/dev/null | grep -q '^Version: 1\.22\.3$'; then
  echo "installing opa v1.22.3 (go install, takes a few minutes)..." >&2
  go install github.com/open-policy-agent/opa@v1.22.3
  opa="$(go env GOPATH)/bin/opa"
fi
out=$PWD/bench/out/policy; rm -rf "$out"; mkdir -p "$out"
# The default policies (without tests), data.json ({"trust": ...} of
# policy/testdata/trust.yaml), input.json (policy/testdata/typical.json as the
# engine passes it), now_ns and wardgate's own decision (wardgate.json).
go test ./policy -run '^TestOPAExport$' -count 1 -args -opa-export "$out" >/dev/null
# The engine pins OPA's clock to the evidence's evaluatedAt; so does the query.
query="data.wardgate.decision with time.now_ns as $(cat "$out/now_ns")"
opa_eval() { "$opa" eval -d "$out/rego" -d "$out/data.json" -i "$out/input.json" --format json "$query"; }
# Same decision: allow and the violation and warning codes.
opa_eval >"$out/opa.json"
python3 - "$out/opa.json" "$out/wardgate.json" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))["result"][0]["expressions"][0]["value"]
got = {"allow": res["allow"],
       "violations": sorted(v["code"] for v in res["violations"]),
       "warnings": sorted(v["code"] for v in res["warnings"])}
want = json.load(open(sys.argv[2]))
want = {k: sorted(v) if isinstance(v, list) else v for k, v in want.items()}
if got != want:
    sys.exit(f"opa eval decided {got}, wardgate {want}")
EOF
# opa eval: wall time of each of n processes, median.
times=()
for _ in $(seq "$n"); do
  t0=$EPOCHREALTIME
  opa_eval >/dev/null
  t1=$EPOCHREALTIME
  times+=("$(echo "$t1 - $t0" | bc -l)")
done
omed=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (n + 1) / 2 ))p")
# OPA's own in-process benchmark of the same query (input parsed once,
# outside the timing): what OPA's evaluator costs on this policy without
# anything of wardgate's around it, on one core like BenchmarkEvaluate.
# Median evaluation time of 5 runs.
obench=()
for _ in 1 2 3 4 5; do
  obench+=("$(GOMAXPROCS=1 "$opa" bench --count 1 --format json -d "$out/rego" -d "$out/data.json" -i "$out/input.json" "$query" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Extra"]["histogram_timer_rego_query_eval_ns_median"])')")
done
obmed=$(printf '%s\n' "${obench[@]}" | sort -n | sed -n 3p)
# wardgate: BenchmarkEvaluate and the floor, BenchmarkEvaluateNoopRules (as
# many rules as the defaults, each an index lookup that never fires), 5 runs
# each on one core, medians.
go test ./policy -run '^$' -bench '^BenchmarkEvaluate(NoopRules)?$' -cpu 1 -count 5 | tee "$out/go-bench.txt" >/dev/null
med() { awk -v b="$1" -v u="$2" '$1 ~ "^"b"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i + 1) == u) print $i }' "$out/go-bench.txt" | sort -n | sed -n 3p; }
wall=$(med BenchmarkEvaluate decisions/s)
cpu=$(med BenchmarkEvaluate cpu-decisions/s)
floor=$(med BenchmarkEvaluateNoopRules decisions/s)
orate=$(echo "1 / $omed" | bc -l)
printf 'policy decision, typical evidence, all default rules (same decision: allow=%s)\n' "$(python3 -c 'import json,sys; print(str(json.load(open(sys.argv[1]))["allow"]).lower())' "$out/wardgate.json")"
printf '  wardgate in process (-cpu 1, median of 5): %.0f decisions/s wall, %.0f decisions/s per CPU second\n' "$wall" "$cpu"
printf '  opa eval, one process per decision (median of %d): %.1f ms, %.1f decisions/s\n' "$n" "$(echo "$omed * 1000" | bc -l)" "$orate"
printf '  ratio (wall): %.0fx; target 20000 decisions/s: %s\n' "$(echo "$wall / $orate" | bc -l)" "$( [ "$(echo "$wall >= 20000" | bc)" = 1 ] && echo met || echo 'NOT met')"
printf '  opa bench, the same query in OPA'"'"'s own process (one core, evaluation only, median of 5): %.0f us, %.0f decisions/s\n' "$(echo "$obmed / 1000" | bc -l)" "$(echo "1000000000 / $obmed" | bc -l)"
printf '  floor: wardgate with no-op rules in place of the defaults (-cpu 1, median of 5): %.0f decisions/s\n' "$floor"
