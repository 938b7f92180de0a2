// A small HTTP/1.1 server (Boost.Beast) for control and admin endpoints: /metrics, /healthz,
// /readyz and JSON status routes. Handlers run on the I/O thread that owns the connection and must
// not block. Bounded: header and body sizes, header/idle timeouts, connection count.
// Construct, add routes and start() on the main thread; stop() from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sf/net/io_pool.h"

namespace sf::http {

struct Request {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', undecoded
  std::string body;
  std::map<std::string, std::string> headers;  // lower-cased names
  // The value of a query parameter (undecoded), or "" if absent.
  std::string param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static Response text(int status, std::string body);
  static Response json(int status, std::string body);
};

using Handler = std::function<Response(const Request&)>;

struct ServerLimits {
  std::size_t max_connections = 1024;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds idle_timeout{30000};
};

class Server {
 public:
  Server(net::IoPool& pool, const net::Endpoint& at, ServerLimits limits = {});
  ~Server();

  // Exact-path route; the first route whose method and path match answers. HEAD is served by GET
  // routes with the body left off.
  void route(std::string method, std::string path, Handler h);
  // Prefix route, for paths with parameters ("/ingest/streams/").
  void route_prefix(std::string method, std::string prefix, Handler h);

  void start();
  // Stops accepting and closes open connections.
  void stop();
  std::uint16_t port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::http
