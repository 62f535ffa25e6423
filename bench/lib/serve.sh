# Sourced (from the repository root) by bench/serve-load.sh,
# bench/replicas.sh and scripts/soak.sh: one wardgate serve on loopback over a fresh state
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
#   serve_addr LOG        (also for servers started otherwise, as by
#                         bench/replicas.sh) the address a serve logging to
#                         LOG listens on
#   evaluate_pump ADDR TOKEN_FILE
#                         serve_evaluate_pump against any server; prints
#                         the digest

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
  addr=$(serve_addr "$log") || exit 2
}

serve_evaluate_pump() {
  digest=$(evaluate_pump "$addr" "$state/ci.tok") || exit 2
}

# serve_addr LOG: the address a wardgate serve logging to LOG listens on,
# once it says "serving" (up to 30 s); exit 2 if it does not.
serve_addr() {
  local log=$1 addr=
  for _ in $(seq 300); do
    addr=$(grep -o '"addr":"[^"]*"' "$log" 2>/dev/null | head -1 | cut -d'"' -f4 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "server did not start" >&2; cat "$log" >&2; exit 2; }
  echo "$addr"
}

# evaluate_pump ADDR CI_TOKEN_FILE: evaluate the pump 2.4.0 release of the
# fixtures once (POST /v1/updates) and print its digest; exit 2 unless it
# is allowed.
evaluate_pump() {
  local fx=fixtures/testdata resp digest
  resp=$(curl -sS -H "Authorization: Bearer $(cat "$2")" \
    -F vendor=acme-infusion -F product=infusion-pump -F version=2.4.0 \
    -F firmware=@$fx/firmware/infusion-pump-2.4.0.bin -F signature=@$fx/sig/infusion-pump-2.4.0.bin.sig \
    -F bundle=@$fx/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json -F sbom=@$fx/sbom/infusion-pump-2.4.0.cdx.json \
    "http://$1/v1/updates")
  digest=$(printf '%s' "$resp" | grep -o '"digest":"sha256:[0-9a-f]*"' | head -1 | cut -d'"' -f4)
  printf '%s' "$resp" | grep -q '"allow":true' || { echo "evaluation did not allow: $resp" >&2; exit 2; }
  echo "$digest"
}
