// The operator's page served at GET /ui: http/ui/index.html, embedded at build time (CMake
// generates ui_page.cc), so the page needs no file at run time and fetches nothing from
// elsewhere. Immutable: thread-safe.
#ifndef ORDO_HTTP_SRC_UI_PAGE_H_
#define ORDO_HTTP_SRC_UI_PAGE_H_

#include <string_view>

namespace ordo::http {

extern const std::string_view kUiPage;

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_UI_PAGE_H_
