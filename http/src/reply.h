// The request and response types of the REST server and the helpers that build its replies.
//
// Every error body is {"error":"<code>","message":"…"} (DESIGN.md), built here and only here.
// Pure functions: thread-safe, never block.
#ifndef ORDO_HTTP_SRC_REPLY_H_
#define ORDO_HTTP_SRC_REPLY_H_

#include <string>
#include <string_view>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "ordo/status.h"

namespace ordo::http {

namespace bhttp = boost::beast::http;
using json = nlohmann::json;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

// A reply with a body of the given content type.
Response BodyReply(int http_status, std::string body, std::string_view content_type);
Response JsonReply(int http_status, const json& body);
Response ErrorReply(int http_status, std::string_view code, const std::string& message,
                    json extra = json::object());
// The error body of a Status: stale_token carries current_token, version_mismatch carries
// current_version, unavailable carries Retry-After.
Response StatusReply(const Status& status, json extra = json::object());

// A strong entity tag: "17".
std::string QuotedEtag(std::uint64_t version);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_REPLY_H_
