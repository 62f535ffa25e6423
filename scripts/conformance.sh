#!/usr/bin/env bash
# Runs the sigstore-conformance verify cases (../shared/conformance/sigstore)
# against `wardgate conformance verify-bundle`, every case twice: with the
# artifact path and with its sha256: digest. Prints "N passed, N failed".
# A rejection counts only when wardgate printed why (exit 1 "rejected [...]",
# or exit 2 "wardgate: ..."), never when it crashed.
set -u
bin=${WARDGATE:-bin/wardgate}
suite=${CONFORMANCE_DIR:-../shared/conformance/sigstore}
if [ ! -d "$suite/bundle-verify" ]; then
  echo "conformance: $suite/bundle-verify is absent (it lives in ../shared beside the repo); cannot run the suite" >&2
  exit 1
fi
default_id='https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main'
default_issuer='https://token.actions.githubusercontent.com'
pass=0; fail=0; failed=()
out=$(mktemp); err=$(mktemp); trap 'rm -f "$out" "$err"' EXIT
for dir in "$suite"/bundle-verify/*/; do
  case=$(basename "$dir")
  artifact="$suite/bundle-verify/a.txt"; [ -f "$dir/artifact" ] && artifact="$dir/artifact"
  root="$suite/trusted_root.public-good.json"; [ -f "$dir/trusted_root.json" ] && root="$dir/trusted_root.json"
  if [ -f "$dir/key.pub" ]; then
    who=(--key "$dir/key.pub")
  else
    id=$default_id; [ -f "$dir/identity" ] && id=$(cat "$dir/identity")
    iss=$default_issuer; [ -f "$dir/issuer" ] && iss=$(cat "$dir/issuer")
    who=(--certificate-identity "$id" --certificate-oidc-issuer "$iss")
  fi
  digest="sha256:$(sha256sum "$artifact" | cut -d' ' -f1)"
  for target in "$artifact" "$digest"; do
    "$bin" conformance verify-bundle --bundle "$dir/bundle.sigstore.json" "${who[@]}" --trusted-root "$root" "$target" >"$out" 2>"$err"
    rc=$?
    ok=0
    if grep -qE '^(panic:|goroutine |fatal error:)' "$err"; then
      ok=0
    elif [[ $case == *_fail ]]; then
      if { [ $rc -eq 1 ] && grep -q '^rejected \[' "$err"; } || { [ $rc -eq 2 ] && grep -q '^wardgate: ' "$err"; }; then ok=1; fi
    else
      [ $rc -eq 0 ] && ok=1
    fi
    if [ $ok -eq 1 ]; then
      pass=$((pass+1))
      [ -n "${VERBOSE:-}" ] && echo "ok   $case ($target): $(cat "$out" "$err" | head -1)"
    else
      fail=$((fail+1)); failed+=("$case ($([[ $target == sha256:* ]] && echo digest || echo path)) rc=$rc: $(head -c 300 "$err" | tr '\n' ' ')")
    fi
  done
done
for f in "${failed[@]}"; do echo "FAIL $f"; done
echo "conformance: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
