// ordo/registry.h — opening a backend by URL.
//
//   inproc:                                    locks in this process
//   flock:///dir                               flock(2) on one file per name in /dir
//   fcntl:///dir                               open-file-description record locks in /dir
//   sqlite:///path.db[?strategy=cas|version]   lease rows in a SQLite file (the embedded default)
//   postgresql://user:pw@host:port/db[?strategy=for-update|cas|version]
//   postgresql://user:pw@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=read-write
//   http://host:port                           a running `ordo serve`
//   etcd://host:port[,host:port…][?prefix=/ordo/]  an etcd v3 cluster (its JSON gateway)
//
// Backends register themselves when libordo loads; Open needs no #include of an adapter.
// Open is thread-safe. Registration is meant for static initialisation and is thread-safe too.
#ifndef ORDO_REGISTRY_H_
#define ORDO_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo {

// One entry of an authority's host list.
struct HostPort {
  std::string host;  // percent-decoded; an IPv6 address without its brackets
  std::string port;  // digits 1-65535, or empty
  bool operator==(const HostPort&) const = default;
};

// A parsed backend URL:
//   scheme ":" ["//" [user[":"password]"@"] hostport ("," hostport)*] path ["?" query]
//   hostport = (name | "[" ipv6 "]") [":" port]
// user, password, hosts, path and query values are percent-decoded. The comma-separated host
// list is libpq's multi-host form; backends that take one host refuse hosts.size() > 1.
struct BackendUrl {
  std::string original;
  std::string scheme;  // lower case, without ':'
  bool has_authority = false;
  std::string user;
  std::string password;
  std::string host;  // hosts[0].host, or empty
  std::string port;  // hosts[0].port: digits, or empty
  std::vector<HostPort> hosts;  // empty when the authority names no host
  std::string path;
  std::map<std::string, std::string> query;

  // The URL with the password (in the authority and any ?password=) replaced by "****": safe
  // for logs and error messages.
  std::string Masked() const;

  // kInvalidArgument naming the first query parameter not in `known` (and listing the known
  // ones). Backends call it so that a misspelled option never passes silently.
  Status CheckQuery(const std::vector<std::string_view>& known) const;
  // The value of a query parameter, or `fallback`.
  std::string QueryOr(std::string_view key, std::string_view fallback) const;
};

// Parses a URL. kInvalidArgument names what is malformed (the message masks the password).
Result<BackendUrl> ParseBackendUrl(std::string_view url);

// Opens the backend the URL names. Errors: kInvalidArgument (malformed URL, unknown scheme,
// unknown strategy or query parameter, a lock directory that is missing or not a directory),
// kUnavailable (the server or database cannot be reached; the message masks the password).
Result<std::unique_ptr<Locker>> Open(std::string_view url);

using BackendFactory = Result<std::unique_ptr<Locker>> (*)(const BackendUrl& url);

// Registers a factory for a URL scheme. Returns true (so it can initialise a static).
bool RegisterBackend(std::string_view scheme, BackendFactory factory);

// The registered schemes, sorted.
std::vector<std::string> RegisteredSchemes();

}  // namespace ordo

#endif  // ORDO_REGISTRY_H_
