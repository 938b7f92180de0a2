// The edge role: a caching reverse proxy for players and CDNs in front of one or more upstreams
// (origins, or another edge acting as a regional shield). However many viewers ask for an object
// that is not cached, one upstream request is made and every waiter is answered when it
// completes (request coalescing); LL-HLS blocking playlist requests coalesce per
// (path, _HLS_msn, _HLS_part, _HLS_skip). Cached objects are read without a lock (a per-thread
// front cache over a shared one). Upstreams fail over in order and are health-probed.
// Construct/start/stop on the main thread; hooks are called on I/O threads and must not block.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sf/auth/token.h"
#include "sf/core/metrics.h"
#include "sf/core/result.h"
#include "sf/http/server.h"
#include "sf/net/io_pool.h"

namespace sf::edge {

struct Config {
  std::string listen = "127.0.0.1:8081";
  std::vector<std::string> upstreams;                 // host:port, in order of preference
  std::string id;                                     // this edge's name in Via (loops); default: its listen address
  std::int64_t cache_bytes = 1024LL * 1024 * 1024;    // memory cache bound
  std::int64_t max_waiters = 20000;                   // per object
  std::int64_t upstream_connections = 64;             // per upstream per I/O thread
  std::int64_t upstream_held_connections = 1024;      // the same, for blocking reloads (held there)
  std::chrono::milliseconds upstream_timeout{3000};   // an ordinary fetch; slower is a stall
  std::chrono::milliseconds blocking_timeout{13000};  // an LL-HLS blocking request (origin holds 3 TD)
  std::chrono::milliseconds health_interval{2000};
  // A /healthz answer later than this marks the upstream down, and its requests in flight are
  // retried on the next one (a hung upstream would hold blocking requests for blocking_timeout).
  std::chrono::milliseconds health_timeout{1000};
  // A blocking playlist request an upstream has not answered after this many of the stream's part
  // targets (its PART-TARGET; 1 s until one is seen) goes to the next upstream as well, and the
  // first answer serves: an origin that is up but lost that stream's ingest. 0: never.
  std::int64_t hedge_parts = 2;
  std::int64_t max_connections = 20000;
  // Viewer tokens (auth.token_keys, the origin's keys): objects an upstream marks X-SF-Access: token
  // are served only to viewers with a valid token, and fetched with a token the edge signs itself.
  std::vector<auth::TokenKey> token_keys;
};

// Hook: viewer tokens (filled in by the auth issue). Returns 0 to allow, or an HTTP status.
class ViewerAuth {
 public:
  virtual ~ViewerAuth() = default;
  virtual int check(const http::Request& request) = 0;
};

struct AccessEvent {
  std::string_view stream;
  std::string_view rendition;
  std::string_view object;  // file name: index.m3u8, s12.p3.m4s, ...
  std::uint64_t bytes = 0;  // body bytes: the whole body, or what was written of one of unknown length
  int status = 0;
  double ttfb_ms = 0;      // request received -> response ready to send
  std::string_view cache;  // HIT, MISS, COALESCED, ERROR
  std::string_view remote;
};

// Hook: one event per served request, for analytics. An answer of unknown length (a chunked body
// still arriving) reports when it ends, with the bytes written to that viewer.
class AccessLog {
 public:
  virtual ~AccessLog() = default;
  virtual void on_access(const AccessEvent& event) = 0;
};

// An AccessLog that appends each event as one JSON object per line ({"time", "remote", "stream",
// "rendition", "object", "status", "bytes", "ttfb_ms", "cache"}) to `path` ("-": standard output),
// written in batches by its own thread, at most 250 ms after the request. Bounded: past 8 MiB not
// yet written, events are dropped and counted (streamflex_edge_access_log_lines_total).
Result<std::shared_ptr<AccessLog>> open_access_log(const std::string& path, Metrics& metrics);

class Edge {
 public:
  Edge(net::IoPool& pool, Config config, Metrics& metrics);
  ~Edge();

  void set_viewer_auth(std::shared_ptr<ViewerAuth> auth);  // before start()
  void set_access_log(std::shared_ptr<AccessLog> log);     // before start()
  void start();
  void stop();
  std::uint16_t port() const;
  // Current viewers per stream: distinct players (by token, else client address and User-Agent)
  // served in the last 10 s; streams without viewers are left out. Any thread.
  std::map<std::string, std::int64_t> viewers() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::edge
