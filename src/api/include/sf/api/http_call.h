// Blocking HTTP/1.1 calls for code that may block (worker threads, the command line): each call
// runs the project's client (sf/http/client.h) on its own io_context in the calling thread, so
// it needs no I/O pool. Never call it on an I/O thread. Thread-safe (no shared state).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "sf/core/result.h"
#include "sf/net/io_pool.h"

namespace sf::api {

struct HttpUrl {
  net::Endpoint endpoint;
  std::string target;  // path and query, "/" at least
};
// "http://host:port/path?query" (port defaults to 80). errc::invalid_argument otherwise (https
// and userinfo are not supported).
Result<HttpUrl> parse_http_url(std::string_view url);

struct HttpAnswer {
  int status = 0;
  std::string body;
  std::string content_type;
};

// errc::timeout, errc::io_error (cannot connect), errc::closed, errc::malformed as the client
// reports them. `body` is sent (with a Content-Length) unless method is GET/HEAD/DELETE and it
// is empty.
Result<HttpAnswer> http_call(const std::string& method, const std::string& url,
                             std::vector<std::pair<std::string, std::string>> headers, std::string body,
                             std::chrono::milliseconds timeout);

}  // namespace sf::api
