#include "admission.h"

#include <charconv>
#include <string>
#include <vector>

#include "ordo/names.h"

namespace ordo::http {
namespace {

std::string Str(boost::beast::string_view s) { return std::string(s.data(), s.size()); }

Admission Refuse(Response res) { return Admission{std::nullopt, std::move(res)}; }

Admission RefuseStatus(const Status& status) { return Refuse(StatusReply(status)); }

}  // namespace

Admission Admit(const ServerState& state, const Request& req) {
  const std::string method = Str(req.method_string());
  const std::string target = Str(req.target());
  // RFC 9112 §3.2: a 1.1 request without Host (or with several) is 400.
  const auto hosts = req.count(bhttp::field::host);
  if (req.version() >= 11 && hosts == 0) {
    return RefuseStatus(InvalidArgumentError("an HTTP/1.1 request needs a Host header"));
  }
  if (hosts > 1) return RefuseStatus(InvalidArgumentError("the request has two Host headers"));
  // The parser refuses conflicting Content-Length values; repeated equal ones (two fields, or
  // "5, 5") are refused here, as a proxy in front may have framed them differently.
  if (req.count(bhttp::field::content_length) > 1) {
    return RefuseStatus(InvalidArgumentError("the request has two Content-Length headers"));
  }
  if (auto cl = req.find(bhttp::field::content_length); cl != req.end()) {
    const auto v = cl->value();
    if (v.empty() || v.find_first_not_of("0123456789") != boost::beast::string_view::npos) {
      return RefuseStatus(
          InvalidArgumentError("Content-Length '" + Str(v.substr(0, 40)) + "' is not a number"));
    }
  }
  for (const char* name : {"Fencing-Token", "Fencing-Lock"}) {
    if (req.count(name) > 1) {
      return RefuseStatus(
          InvalidArgumentError(std::string("the request has two ") + name + " headers"));
    }
  }
  if (target.size() > kMaxTargetBytes) {
    return Refuse(ErrorReply(414, "invalid_argument",
                             "request target is " + std::to_string(target.size()) +
                                 " bytes; the limit is " + std::to_string(kMaxTargetBytes)));
  }
  const std::string path = target.substr(0, target.find('?'));
  auto route = MatchRoute(target);
  if (!route) return Refuse(ErrorReply(404, "not_found", "no route " + method + " " + path));
  if (!MethodAllowed(*route, method)) {
    Response res =
        ErrorReply(405, "method_not_allowed",
                   method + " is not allowed on " + path + "; allowed: " + AllowHeader(*route));
    res.set(bhttp::field::allow, AllowHeader(*route));
    return Refuse(std::move(res));
  }
  // A declared oversized body is refused before any of it is read.
  if (auto cl = req.find(bhttp::field::content_length); cl != req.end()) {
    std::uint64_t length = 0;
    const auto v = cl->value();
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), length);
    if (ec != std::errc() || length > state.options.max_body) {
      return Refuse(ErrorReply(413, "payload_too_large",
                               "the body is " + Str(v) + " bytes; the limit is " +
                                   std::to_string(state.options.max_body) + " (--max-body)"));
    }
  }
  // Bodies must declare their length, so that the limit is known before the body is read.
  if (req.count(bhttp::field::transfer_encoding) > 0) {
    return Refuse(ErrorReply(411, "invalid_argument",
                             "send the body with a Content-Length; Transfer-Encoding is not "
                             "accepted"));
  }
  std::string query_error;
  auto params = ParseQuery(target, &query_error);
  if (!params) return RefuseStatus(InvalidArgumentError(query_error));
  if (state.auth && !route->open) {
    const auto authorization = req.find(bhttp::field::authorization);
    const int who =
        state.auth->Find(authorization == req.end() ? "" : Str(authorization->value()));
    if (who < 0) {
      Response res = ErrorReply(401, "unauthorized",
                                authorization != req.end()
                                    ? "the bearer token is not known"
                                    : "an 'Authorization: Bearer TOKEN' header is required");
      res.set(bhttp::field::www_authenticate, "Bearer realm=\"ordo\"");
      return Refuse(std::move(res));
    }
    std::vector<std::string> touched;
    if (route->kind != NameKind::kNone) touched.push_back(route->name);
    route->auth_index = who;
    if (route->id == RouteId::kRevoke && !state.auth->IsAdmin(who)) {
      return Refuse(ErrorReply(403, "forbidden",
                               "revoking a lease needs a token with the admin scope ('TOKEN "
                               "PREFIX[,PREFIX...] admin' in the auth file)"));
    }
    if (route->id == RouteId::kList || route->id == RouteId::kEvents ||
        route->id == RouteId::kElections) {
      std::string prefix;
      for (const auto& [k, v] : *params) {
        if (k == "prefix") prefix = v;
      }
      touched.push_back(prefix);
    }
    if (route->id == RouteId::kFenced || route->id == RouteId::kObject) {
      if (auto lock = req.find("Fencing-Lock"); lock != req.end()) {
        touched.push_back(Str(lock->value()));
      }
    }
    for (const auto& name : touched) {
      if (!state.auth->Allows(who, name)) {
        return Refuse(ErrorReply(
            403, "forbidden",
            "this token may not use '" + name + "': it is outside the token's prefixes"));
      }
    }
  }
  for (const auto& [key, value] : *params) {
    bool known = false;
    for (auto p : route->params) known = known || p == key;
    if (!known) {
      return RefuseStatus(InvalidArgumentError("unknown query parameter '" + key + "'"));
    }
  }
  if (route->kind != NameKind::kNone) {
    if (!route->name_error.empty()) return RefuseStatus(InvalidArgumentError(route->name_error));
    Status valid =
        ValidateName(route->name, NameKindLabel(route->kind));
    if (!valid.ok()) return RefuseStatus(valid);
  }
  return Admission{std::move(route), std::nullopt};
}

}  // namespace ordo::http
