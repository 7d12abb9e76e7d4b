#!/bin/sh
# Register the clinflow namespace and its custom search attributes (idempotent).
# Runs in the temporalio/admin-tools image.
#   TEMPORAL_ADDRESS            host:port of the frontend
#   NAMESPACE                   must equal CLINFLOW_TEMPORAL_NAMESPACE
#   NAMESPACE_RETENTION         workflow history retention, e.g. 30d
#   SEARCH_ATTRIBUTES           space-separated Name=Type pairs
set -eu

: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}"
RETENTION="${NAMESPACE_RETENTION:-30d}"

tries=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "temporal frontend not healthy" >&2; exit 1; }
  sleep 2
done

if ! temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" --retention "$RETENTION"
fi

existing=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE")
for pair in ${SEARCH_ATTRIBUTES:-}; do
  name=${pair%%=*}
  type=${pair#*=}
  if ! printf '%s\n' "$existing" | grep -qw "$name"; then
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" \
      --name "$name" --type "$type"
  fi
done
echo "namespace $NAMESPACE ready"
