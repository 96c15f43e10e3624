// Fencing your own PostgreSQL table from C++ with libpqxx and <ordo/pg_fence.h>: take the ordo
// lock of an order, then change the order in a transaction that starts with ordo::pg::Fence.
//
//   ordo fence install --database "$DATABASE_URL"          # once
//   ordo-pg-fence-example sqlite:///var/lib/app/locks.db 'host=db dbname=shop user=app' 42 3
//
// Exit codes: 0 done, 1 the lock is held, 2 a newer holder has written (nothing of this
// transaction was committed), 3 any other error.
#include <ordo/ordo.h>
#include <ordo/pg_fence.h>  // not part of ordo.h: it includes <pqxx/pqxx>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s LOCK_BACKEND_URL CONNINFO ORDER_ID QUANTITY\n", argv[0]);
    return 3;
  }
  const std::string order = argv[3];
  const long qty = std::stol(argv[4]);
  const std::string lock = "orders:" + order;  // the resource is named after the lock

  auto locker = ordo::Open(argv[1]);
  if (!locker.ok()) {
    std::fprintf(stderr, "%s\n", locker.status().ToString().c_str());
    return 3;
  }
  auto lease = (*locker)->Acquire({.name = lock, .ttl = 30s, .wait = 10s});
  if (!lease.ok()) {
    std::fprintf(stderr, "%s\n", lease.status().ToString().c_str());
    return lease.status().code() == ordo::StatusCode::kLockHeld ? 1 : 3;
  }
  int code = 0;
  try {
    pqxx::connection conn(argv[2]);
    pqxx::work tx(conn);
    // First, before the reads that the write depends on.
    if (ordo::Status fenced = ordo::pg::Fence(tx, lock, lease->token); !fenced.ok()) {
      std::fprintf(stderr, "order %s: refused: %s\n", order.c_str(), fenced.ToString().c_str());
      code = fenced.code() == ordo::StatusCode::kStaleToken ? 2 : 3;  // tx rolls back
    } else {
      const long id = std::stol(order);
      const long current =
          tx.exec_params("SELECT qty FROM orders WHERE id = $1", id)[0][0].as<long>();
      tx.exec_params("UPDATE orders SET qty = $1 WHERE id = $2", current + qty, id);
      tx.commit();
      std::printf("order %s: qty %ld -> %ld under token %llu\n", order.c_str(), current,
                  current + qty, static_cast<unsigned long long>(lease->token));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "order %s: %s\n", order.c_str(), e.what());
    code = 3;
  }
  (*locker)->Release(*lease).IgnoreError();
  return code;
}
