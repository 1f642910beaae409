#!/usr/bin/env bash
# bench/setup.sh: prepare a oneM2M CSE for the load workloads of bench/load.sh, using only
# standard oneM2M requests over HTTP (TS-0009), so it works the same on ACME and Bastion.
#
# Usage: bench/setup.sh BASE_URL CSE_NAME [MNI]
#   e.g. bench/setup.sh http://127.0.0.1:18092 cse-in 1000
#
# Environment (defaults): ADMIN=CAdmin  AE_ORIG=Cbench  AE_RN=bench  READER=Creader
#
# Resources it creates (every step's X-M2M-RSC is checked; any mismatch aborts with exit 1):
#   1. GET    /CSE_NAME                as ADMIN     -> 2000   (CSE up, admin can read CSEBase: W3)
#   2. CREATE <AE> rn=AE_RN            as AE_ORIG   -> 2001   (api Nbench, rr false, srv ["3"])
#   3. CREATE <container> cnt (mni=MNI) under the AE, as AE_ORIG -> 2001
#   4. CREATE <ACP> acpBench under the AE, as AE_ORIG -> 2001
#        pv : READER may RETRIEVE+CREATE (acop 3)
#        pvs: AE_ORIG and ADMIN may do everything (acop 63)
#   5. RETRIEVE cnt as READER before linking -> 4103 expected (sanity: the ACP matters).
#        If the CSE answers 4106 (originator not registered), READER is registered as an
#        AE (rn reader, api Nreader) and the check is repeated.
#   6. UPDATE cnt with only {"acpi":[<ri of acpBench>]} as AE_ORIG -> 2004
#        (acpi unset before: the default policy gives the creator access)
#   7. CREATE <contentInstance> in cnt as READER -> 2001 (so `la` exists; proves CREATE grant)
#   8. RETRIEVE cnt/la as READER -> 2000 (proves RETRIEVE grant: W1)
# Prints "SETUP OK" at the end.
set -euo pipefail

BASE=${1:?usage: setup.sh BASE_URL CSE_NAME [MNI]}
CSE=${2:?usage: setup.sh BASE_URL CSE_NAME [MNI]}
MNI=${3:-1000}
ADMIN=${ADMIN:-CAdmin}
AE_ORIG=${AE_ORIG:-Cbench}
AE_RN=${AE_RN:-bench}
READER=${READER:-Creader}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
SEQ=0
RSC=""
BODY=""

# req METHOD PATH ORIGIN TY BODY : sends one request; sets RSC and BODY.
req() {
  local method=$1 path=$2 origin=$3 ty=$4 data=$5
  SEQ=$((SEQ + 1))
  local args=(-sS -m 10 -X "$method" -D "$TMP/h" -o "$TMP/b" -w '%{http_code}'
    -H "X-M2M-Origin: $origin" -H "X-M2M-RI: setup-$SEQ" -H 'X-M2M-RVI: 3'
    -H 'Accept: application/json')
  if [[ -n $data ]]; then
    if [[ -n $ty ]]; then args+=(-H "Content-Type: application/json;ty=$ty")
    else args+=(-H 'Content-Type: application/json'); fi
    args+=(--data-binary "$data")
  fi
  HTTP=$(curl "${args[@]}" "$BASE$path") || { echo "SETUP FAILED: curl $method $path failed" >&2; exit 1; }
  RSC=$(tr -d '\r' <"$TMP/h" | awk -F': *' 'tolower($1)=="x-m2m-rsc"{print $2}' | tail -1)
  BODY=$(cat "$TMP/b")
}

# expect STEP RSC...: abort loudly unless the last response's RSC is one of RSC...
expect() {
  local step=$1; shift
  for want in "$@"; do
    if [[ $RSC == "$want" ]]; then echo "  ok   $step -> $RSC"; return 0; fi
  done
  echo "SETUP FAILED at '$step': expected X-M2M-RSC $* but got '${RSC:-none}' (HTTP $HTTP)" >&2
  echo "  response body: $BODY" >&2
  exit 1
}

register_reader() {
  echo "  note CSE rejected unregistered $READER (4106): registering it as an AE"
  req POST "/$CSE" "$READER" 2 '{"m2m:ae":{"rn":"reader","api":"Nreader","rr":false,"srv":["3"]}}'
  expect "register $READER as AE" 2001
}

echo "setup $BASE /$CSE (admin $ADMIN, AE $AE_ORIG rn=$AE_RN, reader $READER, mni $MNI)"

req GET "/$CSE" "$ADMIN" "" ""
expect "RETRIEVE CSEBase as $ADMIN" 2000

req POST "/$CSE" "$AE_ORIG" 2 "{\"m2m:ae\":{\"rn\":\"$AE_RN\",\"api\":\"Nbench\",\"rr\":false,\"srv\":[\"3\"]}}"
expect "CREATE AE $AE_ORIG" 2001

req POST "/$CSE/$AE_RN" "$AE_ORIG" 3 "{\"m2m:cnt\":{\"rn\":\"cnt\",\"mni\":$MNI}}"
expect "CREATE container cnt (mni $MNI)" 2001

req POST "/$CSE/$AE_RN" "$AE_ORIG" 1 "{\"m2m:acp\":{\"rn\":\"acpBench\",
  \"pv\":{\"acr\":[{\"acor\":[\"$READER\"],\"acop\":3}]},
  \"pvs\":{\"acr\":[{\"acor\":[\"$AE_ORIG\",\"$ADMIN\"],\"acop\":63}]}}}"
expect "CREATE ACP acpBench" 2001
ACP_RI=$(printf '%s' "$BODY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["m2m:acp"]["ri"])') \
  || { echo "SETUP FAILED: no m2m:acp.ri in the ACP CREATE response: $BODY" >&2; exit 1; }
echo "       acpBench ri = $ACP_RI"

req GET "/$CSE/$AE_RN/cnt" "$READER" "" ""
if [[ $RSC == 4106 ]]; then
  register_reader
  req GET "/$CSE/$AE_RN/cnt" "$READER" "" ""
fi
if [[ $RSC == 4103 ]]; then
  echo "  ok   RETRIEVE cnt as $READER before the ACP link -> 4103 (denied, as it should be)"
else
  echo "  WARNING: RETRIEVE cnt as $READER before the ACP link gave ${RSC:-none}, not 4103:" \
       "access control may not be enforced on this target" >&2
fi

req PUT "/$CSE/$AE_RN/cnt" "$AE_ORIG" "" "{\"m2m:cnt\":{\"acpi\":[\"$ACP_RI\"]}}"
expect "UPDATE cnt acpi=[$ACP_RI] as $AE_ORIG" 2004

req POST "/$CSE/$AE_RN/cnt" "$READER" 4 '{"m2m:cin":{"con":"setup"}}'
if [[ $RSC == 4106 ]]; then
  register_reader
  req POST "/$CSE/$AE_RN/cnt" "$READER" 4 '{"m2m:cin":{"con":"setup"}}'
fi
expect "CREATE contentInstance as $READER" 2001

req GET "/$CSE/$AE_RN/cnt/la" "$READER" "" ""
expect "RETRIEVE cnt/la as $READER" 2000

echo "SETUP OK"
