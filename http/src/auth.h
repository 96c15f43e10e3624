// Bearer-token authentication of the REST server (--auth-file).
//
// The file has one token per line: `TOKEN PREFIX[,PREFIX…]`. The token is 16 or more printable
// ASCII characters without spaces; each prefix is the start of the lock names and keys (fenced
// and object) the token may touch, or `*` for all of them. Blank lines and lines starting with
// `#` are ignored. The word `admin` after the prefixes (`TOKEN PREFIX[,PREFIX…] admin`) gives
// the token the admin scope: it may revoke other holders' leases (POST …/revoke). Example:
//
//   # the deploy pipeline may use locks and keys under "deploy." and "release."
//   4f9c0e2b7d1a44c3a8e5b6f70d2c9e11 deploy.,release.
//   a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5 * admin
//
// A token is compared in constant time against every configured token (the comparison does not
// stop at the first difference nor at the first match), so response timing tells nothing about
// how much of a guess was right. Immutable after Load: thread-safe.
#ifndef ORDO_HTTP_SRC_AUTH_H_
#define ORDO_HTTP_SRC_AUTH_H_

#include <string>
#include <string_view>
#include <vector>

#include "ordo/status.h"

namespace ordo::http {

class Authenticator {
 public:
  // Parses an auth file. kInvalidArgument names the file, the line and what is wrong.
  static Result<Authenticator> Load(const std::string& path);
  // Parses the file's text (`origin` names it in messages).
  static Result<Authenticator> Parse(std::string_view text, const std::string& origin);

  // The index of the token given in an "Authorization: Bearer …" header value, or -1.
  int Find(std::string_view authorization) const;
  // Whether token `index` may use `name` (a lock name, key or list prefix).
  bool Allows(int index, std::string_view name) const;

  // Whether token `index` carries the admin scope.
  bool IsAdmin(int index) const;
  // "line N" of the auth file for token `index`: names a token in logs and events without
  // revealing it.
  std::string Describe(int index) const;

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string token;
    std::vector<std::string> prefixes;  // empty string: everything
    bool admin = false;
    int line = 0;
  };
  std::vector<Entry> entries_;
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_AUTH_H_
