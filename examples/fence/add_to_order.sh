#!/bin/sh
# Fencing your own PostgreSQL table from a shell script: take the ordo lock of order N, then
# change the order in a transaction that starts with ordo_fence(resource, token).
#
#   ordo fence install --database "$DATABASE_URL"          # once
#   ORDO_BACKEND=sqlite:///var/lib/app/locks.db \
#   DATABASE_URL=postgresql://app@db.internal/shop ./add_to_order.sh 42 3
#
# If this script is paused after its lease expired and another holder of orders:42 has written
# meanwhile, ordo_fence raises SQLSTATE OR409 and psql stops (ON_ERROR_STOP): the transaction
# never commits, so the late write is lost rather than the newer one.
# The SQL goes to psql on stdin: psql -c does not substitute variables such as :token.
set -eu
order=${1:?usage: add_to_order.sh ORDER_ID QUANTITY}
qty=${2:?usage: add_to_order.sh ORDER_ID QUANTITY}
lock="orders:$order"   # the resource is named after the lock: fences compare one lock's tokens

lease=$(ordo lock acquire "$lock" --ttl 30s --wait 10s) || exit
token=$(printf '%s' "$lease" | sed -n 's/.*"token":\([0-9]*\).*/\1/p')
trap 'ordo lock release "$lock" --token "$token" >/dev/null || true' EXIT

psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 \
     -v lock="$lock" -v token="$token" -v order="$order" -v qty="$qty" <<'SQL'
BEGIN;
-- First, before the reads the write depends on: raises the fence to :token and holds it.
SELECT ordo_fence(:'lock', :token) AS fence \gset
UPDATE orders SET qty = qty + :qty WHERE id = :order;
COMMIT;
\echo 'order' :order 'updated under token' :fence
SQL
