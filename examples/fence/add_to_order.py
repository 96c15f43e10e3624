#!/usr/bin/python3
"""Fencing your own PostgreSQL table from Python (standard library + psycopg2, Debian's
python3-psycopg2): take the ordo lock of an order, then change the order in a transaction that
starts with ordo_fence(resource, token).

    ordo fence install --database "$DATABASE_URL"          # once
    ORDO_BACKEND=sqlite:///var/lib/app/locks.db \
    DATABASE_URL=postgresql://app@db.internal/shop ./add_to_order.py 42 3

Exit codes: 0 done, 1 the lock is held, 2 a newer holder has written (stale token: nothing of
this transaction was committed), 125 an ordo error.
"""
import json
import os
import subprocess
import sys

import psycopg2

STALE_TOKEN = "OR409"  # the SQLSTATE ordo_fence raises


def ordo(*args):
    return subprocess.run(["ordo", *args], capture_output=True, text=True)


def main():
    order, qty = int(sys.argv[1]), int(sys.argv[2])
    lock = f"orders:{order}"  # the resource is named after the lock whose tokens it receives
    acquired = ordo("lock", "acquire", lock, "--ttl", "30s", "--wait", "10s")
    if acquired.returncode != 0:
        sys.stderr.write(acquired.stdout + acquired.stderr)
        return acquired.returncode
    token = json.loads(acquired.stdout)["token"]
    try:
        conn = psycopg2.connect(os.environ["DATABASE_URL"])
        try:
            with conn:  # one transaction: commit on success, rollback on any exception
                with conn.cursor() as cur:
                    # First, before the reads that the write depends on.
                    cur.execute("SELECT ordo_fence(%s, %s)", (lock, token))
                    cur.execute("SELECT qty FROM orders WHERE id = %s", (order,))
                    (current,) = cur.fetchone()
                    cur.execute("UPDATE orders SET qty = %s WHERE id = %s",
                                (current + qty, order))
            print(f"order {order}: qty {current} -> {current + qty} under token {token}")
            return 0
        except psycopg2.Error as e:
            if e.pgcode == STALE_TOKEN:
                print(f"order {order}: refused, {e.pgerror.strip()}", file=sys.stderr)
                return 2
            raise
        finally:
            conn.close()
    finally:
        ordo("lock", "release", lock, "--token", str(token))


if __name__ == "__main__":
    sys.exit(main())
