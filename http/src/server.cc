// Placeholder until the REST server lands.
#include "ordo_http/server.h"

#include <cstdio>

namespace ordo::http {

int RunServer(const ServeOptions&) {
  std::fprintf(stderr, "ordo serve: the HTTP server is not built in this version\n");
  return 125;
}

}  // namespace ordo::http
