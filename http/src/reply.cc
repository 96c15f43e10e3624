#include "reply.h"

#include "ordo_wire/wire.h"

namespace ordo::http {

Response BodyReply(int http_status, std::string body, std::string_view content_type) {
  Response res{static_cast<bhttp::status>(http_status), 11};
  res.set(bhttp::field::content_type, content_type);
  res.body() = std::move(body);
  return res;
}

Response JsonReply(int http_status, const json& body) {
  // Messages may quote what the client sent (a path, a header); bytes that are not UTF-8 are
  // replaced rather than allowed to make dump() throw.
  return BodyReply(http_status, body.dump(-1, ' ', false, json::error_handler_t::replace),
                   "application/json");
}

Response ErrorReply(int http_status, std::string_view code, const std::string& message,
                    json extra) {
  extra["error"] = code;
  extra["message"] = message;
  return JsonReply(http_status, extra);
}

Response StatusReply(const Status& status, json extra) {
  if (status.current().has_value()) {
    if (status.code() == StatusCode::kStaleToken) extra["current_token"] = *status.current();
    if (status.code() == StatusCode::kVersionMismatch) {
      extra["current_version"] = *status.current();
    }
  }
  Response res = ErrorReply(wire::HttpStatusOf(status.code()), StatusCodeName(status.code()),
                            status.message(), std::move(extra));
  if (status.code() == StatusCode::kUnavailable) res.set(bhttp::field::retry_after, "1");
  return res;
}

std::string QuotedEtag(std::uint64_t version) { return "\"" + std::to_string(version) + "\""; }

}  // namespace ordo::http
