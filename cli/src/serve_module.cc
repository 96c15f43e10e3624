// libordo-serve.so: `ordo serve`'s HTTP server, loaded by the binary only for that subcommand
// (see backend_loader.h), so that `ordo run` does not link the server and its libraries.
#include "ordo_http/server.h"

extern "C" __attribute__((visibility("default"))) int ordo_cli_run_server(
    const ordo::http::ServeOptions* options) {
  return ordo::http::RunServer(*options);
}
