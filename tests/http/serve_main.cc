// ordo-http-test-serve BACKEND LISTEN [AUTH_FILE [EVENTS_RING]]: RunServer in a process of its
// own, the way `ordo serve` runs it, so that tests can send it signals and read its log. An
// empty AUTH_FILE is no auth.
#include <cstdio>
#include <cstdlib>

#include "ordo_http/server.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ordo-http-test-serve BACKEND LISTEN [AUTH_FILE [EVENTS_RING]]\n");
    return 2;
  }
  ordo::http::ServeOptions options;
  options.backend_url = argv[1];
  options.listen = argv[2];
  if (argc > 3) options.auth_file = argv[3];
  if (argc > 4) options.events_ring = std::strtoull(argv[4], nullptr, 10);
  options.keep_alive = std::chrono::seconds(1);
  return ordo::http::RunServer(options);
}
