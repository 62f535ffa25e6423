# Sourced (from the repository root) by bench/serve-load.sh and
# scripts/soak.sh: one wardgate serve on loopback over a fresh state
# directory, with the pump 2.4.0 release evaluated, and nothing left
# behind when the script exits.
#
#   serve_init OUT NAME   $wardgate: $WARDGATE if set, else built into OUT;
#                         $state: a fresh state directory, removed on exit
#                         with the server stopped
#   serve_tokens ROLE...  a token per role in $state/ROLE.tok
#   serve_start LOG [FLAGS...]
#                         wardgate serve (fixtures/trust.yaml, --no-scan)
#                         on a free port, its log in LOG (without the
#                         per-request lines when SERVE_LOG_QUIET=1);
#                         sets $pid and $addr
#   serve_evaluate_pump   POST /v1/updates of the pump 2.4.0 release with
#                         $state/ci.tok; sets $digest, exits 2 unless allowed

serve_init() {
  local out=$1 name=$2
  mkdir -p "$out"
  wardgate=${WARDGATE:-}
  if [ -z "$wardgate" ]; then
    go build -o "$out/wardgate" ./cmd/wardgate
    wardgate=$out/wardgate
  fi
  state=$(mktemp -d "${TMPDIR:-/tmp}/wardgate-$name.XXXXXX")
  pid=
  trap serve_cleanup EXIT
  export WARDGATE_KEY_PASSWORD=
}

serve_cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$state"
}

serve_tokens() {
  local r
  for r in "$@"; do
    "$wardgate" token create --role "$r" --name "$r" --state "$state" >"$state/$r.tok" 2>/dev/null
  done
}

serve_start() {
  local log=$1
  shift
  if [ "${SERVE_LOG_QUIET:-}" = 1 ]; then
    "$wardgate" serve --config fixtures/trust.yaml --state "$state" --listen 127.0.0.1:0 --no-scan --unencrypted-key "$@" \
      2> >(grep --line-buffered -v '"msg":"request"' >"$log") &
  else
    "$wardgate" serve --config fixtures/trust.yaml --state "$state" --listen 127.0.0.1:0 --no-scan --unencrypted-key "$@" 2>"$log" &
  fi
  pid=$!
  for _ in $(seq 100); do grep -q '"msg":"serving"' "$log" 2>/dev/null && break; sleep 0.1; done
  addr=$(grep -o '"addr":"[^"]*"' "$log" | head -1 | cut -d'"' -f4)
  [ -n "$addr" ] || { echo "server did not start"; cat "$log"; exit 2; }
}

serve_evaluate_pump() {
  local fx=fixtures/testdata resp
  resp=$(curl -sS -H "Authorization: Bearer $(cat "$state/ci.tok")" \
    -F vendor=acme-infusion -F product=infusion-pump -F version=2.4.0 \
    -F firmware=@$fx/firmware/infusion-pump-2.4.0.bin -F signature=@$fx/sig/infusion-pump-2.4.0.bin.sig \
    -F bundle=@$fx/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json -F sbom=@$fx/sbom/infusion-pump-2.4.0.cdx.json \
    "http://$addr/v1/updates")
  digest=$(printf '%s' "$resp" | grep -o '"digest":"sha256:[0-9a-f]*"' | head -1 | cut -d'"' -f4)
  printf '%s' "$resp" | grep -q '"allow":true' || { echo "evaluation did not allow: $resp"; exit 2; }
}
