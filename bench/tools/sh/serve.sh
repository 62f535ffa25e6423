# Shell functions the scripts that drive a wardgate serve share
# (bench/serve-load.sh, bench/replicas.sh, scripts/soak.sh); source it
# from the repository's root.

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
