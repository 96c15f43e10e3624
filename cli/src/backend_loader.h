// How the `ordo` binary reaches its backends without paying for all of them at every start.
//
// The binary carries the middleware and the file backends (flock://, fcntl://, inproc:) itself;
// libordo.so, with the SQLite, PostgreSQL, HTTP and etcd clients and the ~30 shared libraries
// they pull in (libpq, OpenSSL, GnuTLS, Kerberos, LDAP, …), is loaded with dlopen(3) only when a
// URL needs it, the HTTP server module only for `ordo serve` and the fence module only for
// `ordo fence`. Dynamic linking of those
// libraries cost `ordo run -- true` about 11 ms before main(); flock(1) pays none of it. Linked
// into a program that links libordo itself (the tests), every scheme is already registered and
// nothing is loaded.
//
// Thread-safe (the library is loaded once, under a once-flag). Loaded libraries stay loaded.
#ifndef ORDO_CLI_BACKEND_LOADER_H_
#define ORDO_CLI_BACKEND_LOADER_H_

#include <memory>
#include <string_view>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo::http {
struct ServeOptions;
}  // namespace ordo::http

namespace ordo::cli {

struct FenceOptions;

// ordo::Open(url) of this binary when it has the URL's scheme, else of libordo.so (loaded on
// first use). Errors: as ordo::Open; kUnavailable when libordo.so cannot be loaded (the message
// says why).
Result<std::unique_ptr<Locker>> OpenBackend(std::string_view url);

// http::RunServer(options) from the serve module (libordo-serve.so, next to libordo.so); its
// exit code, or kExitOrdoError with a message when the module cannot be loaded.
int RunServerModule(const http::ServeOptions& options);

// `ordo fence` from the fence module (libordo-fence.so, next to libordo.so); as RunServerModule.
int RunFenceModule(const FenceOptions& options);

}  // namespace ordo::cli

#endif  // ORDO_CLI_BACKEND_LOADER_H_
