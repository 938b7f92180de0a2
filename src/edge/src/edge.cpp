#include "sf/edge/edge.h"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "cache.h"
#include "sf/auth/token_access.h"
#include "sf/core/log.h"
#include "sf/hls/playlist.h"
#include "sf/http/client.h"
#include "viewers.h"

namespace sf::edge {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// The body of the 504 a held request gets when the upstream did not answer within its hold.
constexpr std::string_view kHoldExpired = "upstream did not answer in time\n";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The part of a request that selects the object: the path and the LL-HLS delivery directives.
// Viewer tokens and other parameters never enter the key (one cached copy for everyone).
std::string cache_key(const http::Request& req) {
  std::string key = req.path;
  char sep = '?';
  for (const char* p : {"_HLS_msn", "_HLS_part", "_HLS_skip"}) {
    if (!req.has_param(p)) continue;
    key += sep;
    key += p;
    key += '=';
    key += req.param(p);
    sep = '&';
  }
  return key;
}

bool blocking(const http::Request& req) {
  return req.has_param("_HLS_msn");
}

// max-age from Cache-Control, -1 if none or no-store/no-cache/private.
std::int64_t max_age(std::string_view cc) {
  if (cc.find("no-store") != std::string_view::npos || cc.find("no-cache") != std::string_view::npos ||
      cc.find("private") != std::string_view::npos)
    return -1;
  auto at = cc.find("max-age=");
  if (at == std::string_view::npos) return -1;
  std::int64_t v = 0;
  for (auto i = at + 8; i < cc.size() && std::isdigit(static_cast<unsigned char>(cc[i])); ++i)
    v = v * 10 + (cc[i] - '0');
  return v;
}

// Whether a request path must not be passed on: a segment that is "." or ".." once its percent-
// escapes are decoded ("%2e%2e"), or one that decodes to a slash, backslash or NUL ("..%2f"), or a
// malformed escape. StreamFlex origins serve from memory, but an edge may front any origin, and one
// that maps paths to files must not be reached through it with a traversal.
bool unsafe_path(std::string_view path) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  std::size_t at = 0;
  while (at <= path.size()) {
    auto end = std::min(path.find('/', at), path.size());
    std::string_view raw = path.substr(at, end - at);
    std::size_t dots = 0, length = 0;
    for (std::size_t i = 0; i < raw.size(); ++i, ++length) {
      char c = raw[i];
      if (c == '%') {
        if (i + 2 >= raw.size()) return true;
        int hi = hex(raw[i + 1]), lo = hex(raw[i + 2]);
        if (hi < 0 || lo < 0) return true;
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
      }
      if (c == '/' || c == '\\' || c == '\0') return true;
      if (c == '.') ++dots;
    }
    if (length > 0 && length <= 2 && dots == length) return true;
    at = end + 1;
  }
  return false;
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

struct Waiter {
  http::Responder responder;
  http::Request request;  // what the answer depends on: method, conditional headers, remote
  Clock::time_point start;
};

struct Flight {
  std::vector<Waiter> waiters;
};

// The access event of an answer whose size is known only once it is written (a body of unknown
// length): it owns the event's fields, adds up the bytes the server reports written, and hands
// the event to the hook when the answer's last copy is gone (the server drops the Response once
// it is written or the viewer has left; a held request not answered in time drops it unsent).
class SentTally {
 public:
  SentTally(std::shared_ptr<AccessLog> log, const AccessEvent& e)
      : log_(std::move(log)),
        stream_(e.stream),
        rendition_(e.rendition),
        object_(e.object),
        remote_(e.remote),
        cache_(e.cache),
        status_(e.status),
        ttfb_ms_(e.ttfb_ms) {}
  SentTally(const SentTally&) = delete;
  SentTally& operator=(const SentTally&) = delete;
  ~SentTally() { log_->on_access({stream_, rendition_, object_, bytes_, status_, ttfb_ms_, cache_, remote_}); }
  // On the viewer's connection thread, after each write.
  void sent(std::size_t n) { bytes_ += n; }

 private:
  std::shared_ptr<AccessLog> log_;
  std::string stream_, rendition_, object_, remote_;
  std::string_view cache_;  // a literal
  int status_;
  double ttfb_ms_;
  std::uint64_t bytes_ = 0;
};

}  // namespace

// Gauges read at scrape time from the objects that own the numbers.
class ScrapeGauges final : public prometheus::Collectable {
 public:
  ScrapeGauges(const http::Server& server, const Cache& cache, ViewerCount& viewers)
      : server_(server), cache_(cache), viewers_(viewers) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    auto gauge = [](const char* name, const char* help, double v) {
      prometheus::MetricFamily f{name, help, prometheus::MetricType::Gauge, {}};
      prometheus::ClientMetric m;
      m.gauge.value = v;
      f.metric.push_back(m);
      return f;
    };
    prometheus::MetricFamily viewers{"streamflex_stream_viewers",
                                     "Viewers of each stream seen by this edge in the last 10 s (at most 200 streams)",
                                     prometheus::MetricType::Gauge,
                                     {}};
    for (auto& [stream, n] : viewers_.counts(now_ms())) {
      if (viewers.metric.size() == kMaxStreamLabels) break;
      prometheus::ClientMetric m;
      m.label.push_back({"stream", stream});
      m.gauge.value = double(n);
      viewers.metric.push_back(std::move(m));
    }
    return {
        gauge("streamflex_edge_connections_active", "Player connections open now",
              double(server_.active_connections())),
        gauge("streamflex_edge_cache_bytes", "Bytes in the cache", double(cache_.bytes())),
        gauge("streamflex_edge_cache_evictions", "Objects evicted for space since start", double(cache_.evictions())),
        gauge("streamflex_edge_viewers_untracked", "Viewers not counted because the viewer table was full",
              double(viewers_.overflow())),
        std::move(viewers)};
  }

 private:
  static constexpr std::size_t kMaxStreamLabels = 200;
  const http::Server& server_;
  const Cache& cache_;
  ViewerCount& viewers_;
};

struct Edge::Impl : std::enable_shared_from_this<Edge::Impl> {
  struct Upstream {
    net::Endpoint endpoint;
    std::string name;
    std::atomic<bool> up{true};
  };

  Impl(net::IoPool& p, Config c, Metrics& m)
      : pool(p),
        config(std::move(c)),
        cache(static_cast<std::size_t>(config.cache_bytes)),
        tokens(config.token_keys),
        requests(prometheus::BuildCounter()
                     .Name("streamflex_edge_requests_total")
                     .Help("Edge requests by cache result")
                     .Register(m.registry())),
        bytes(prometheus::BuildCounter()
                  .Name("streamflex_edge_sent_bytes_total")
                  .Help("Body bytes sent by cache result")
                  .Register(m.registry())),
        upstream_requests(prometheus::BuildCounter()
                              .Name("streamflex_edge_upstream_requests_total")
                              .Help("Requests to upstreams by result")
                              .Register(m.registry())),
        upstream_seconds(
            prometheus::BuildHistogram()
                .Name("streamflex_edge_upstream_seconds")
                .Help("Upstream request time")
                .Register(m.registry())
                .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10})),
        coalesced(prometheus::BuildCounter()
                      .Name("streamflex_edge_coalesced_waiters_total")
                      .Help("Requests that waited on another request's upstream fetch")
                      .Register(m.registry())
                      .Add({})),
        resumes(prometheus::BuildCounter()
                    .Name("streamflex_edge_upstream_resumes_total")
                    .Help("Bodies broken off upstream mid-answer, by what became of them (resumed from the next "
                          "upstream, differed there, or failed)")
                    .Register(m.registry())),
        hedges(prometheus::BuildCounter()
                   .Name("streamflex_edge_hedged_requests_total")
                   .Help("Blocking playlist requests also sent to the next upstream because the first was late (an "
                         "upstream that lost the stream's ingest), by which upstream's answer served")
                   .Register(m.registry())),
        prefetches(prometheus::BuildCounter()
                       .Name("streamflex_edge_prefetches_total")
                       .Help("Parts fetched from upstream when a blocking playlist answer announced them")
                       .Register(m.registry())
                       .Add({})),
        waiting(prometheus::BuildGauge()
                    .Name("streamflex_edge_waiting_requests")
                    .Help("Requests waiting for an upstream answer")
                    .Register(m.registry())
                    .Add({})) {
    init_counters();
    if (config.upstreams.empty()) throw std::runtime_error("edge.upstreams: at least one upstream is needed");
    for (auto& u : config.upstreams) {
      auto ep = net::parse_endpoint(u);
      if (!ep) throw std::runtime_error("edge.upstreams: expected host:port, got " + u);
      auto up = std::make_unique<Upstream>();
      up->endpoint = *ep;
      up->name = u;
      upstreams.push_back(std::move(up));
    }
    if (config.id.empty()) config.id = "streamflex-edge-" + config.listen;
    auto ep = net::parse_endpoint(config.listen);
    if (!ep) throw std::runtime_error("edge.listen: expected host:port, got " + config.listen);
    http::ServerLimits limits;
    limits.cors = true;
    limits.max_connections = static_cast<std::size_t>(config.max_connections);
    limits.header_timeout = 5s;  // slow-loris: the whole head within 5 s
    server = std::make_unique<http::Server>(pool, *ep, limits);
    server->route("GET", "/healthz", [this](http::Request&) {
      bool any = std::any_of(upstreams.begin(), upstreams.end(), [](auto& u) { return u->up.load(); });
      return any ? http::Response::text(200, "ok\n") : http::Response::text(503, "no upstream is up\n");
    });
    auto fallback = error(504, std::string(kHoldExpired));
    auto hold = config.blocking_timeout + config.upstream_timeout;
    server->route_held("GET", "/", hold, fallback,
                       [this](const http::Request& req, http::Responder res) { serve(req, std::move(res)); });
    // Requests refused before any route saw them (malformed, too large, too slow) are access
    // events too, with no stream or object.
    server->on_refused([this](int status, const std::string& remote) {
      if (access) access->on_access({{}, {}, {}, 0, status, 0, "ERROR", remote});
    });
  }

  // -- serving --
  void serve(const http::Request& req, http::Responder res) {
    auto start = Clock::now();
    // Forwarding loops (edge -> shield -> edge): our own name in Via means the request came round.
    if (req.header("via").find(config.id) != std::string::npos) {
      return finish(res, req, error(508, "forwarding loop detected\n"), "ERROR", start);
    }
    if (unsafe_path(req.path)) return finish(res, req, error(400, "bad path\n"), "ERROR", start);
    if (auth) {
      if (int status = auth->check(req)) return finish(res, req, error(status, "not allowed\n"), "ERROR", start);
    }
    std::string key = cache_key(req);
    auto e = cache.find(key, start);
    if (!e) {
      std::lock_guard lock(flights_mu);
      auto it = flights.find(key);
      if (it != flights.end()) {
        if (it->second.waiters.size() >= static_cast<std::size_t>(config.max_waiters))
          return finish(res, req, error(503, "too many waiting for this object\n"), "ERROR", start);
        it->second.waiters.push_back({res, req, start});
        coalesced.Increment();
        waiting.Increment();
        return;
      }
      // A fetch stores its answer before it ends its flight: one that finished since the first
      // look left the object in the cache, and must not be followed by a second fetch.
      e = cache.find(key, start);
      if (!e) {
        flights[key].waiters.push_back({res, req, start});
        waiting.Increment();
      }
    }
    if (e) {
      if (needs_whole(req, *e)) return answer_when_whole(res, req, e, "HIT", start);
      return finish(res, req, respond(*e, req, start), "HIT", start);
    }
    std::string target = key;  // path + directives, without viewer parameters
    // The fetch runs on this connection's thread, with that thread's upstream connections.
    asio::co_spawn(req.executor,
                   fetch(shared_from_this(), req.executor, std::move(key), std::move(target), blocking(req)),
                   asio::detached);
  }

  // Objects at least this large are handed to their waiters as the upstream's bytes arrive;
  // smaller ones (playlists, blocking answers) once complete.
  static constexpr std::size_t kStreamFrom = 16 * 1024;
  // Complete objects at least this large are served from a file (make_entry).
  static constexpr std::size_t kFileFrom = 128 * 1024;

  // What `fetch` handed to the waiters at the upstream's head, if it did.
  struct Streamed {
    bool answered = false;
    std::shared_ptr<const Entry> entry;
    // A body whose failure is held, so another upstream can finish it (of known length, or
    // chunked), and the head it came with.
    std::shared_ptr<http::SharedBody> body;
    std::shared_ptr<http::ChunkedBody> chunked;
    http::ClientResponse head;
  };

  static asio::awaitable<void> fetch(std::shared_ptr<Impl> self, asio::any_io_executor ex, std::string key,
                                     std::string target, bool is_blocking) {
    auto streamed = std::make_shared<Streamed>();
    http::OnHead on_head = [self, key, target, streamed](const http::ClientResponse& head,
                                                         const http::ArrivingBody& body) {
      streamed->entry = self->on_upstream_head(key, target, head, body);
      streamed->answered = streamed->entry != nullptr;
      // Called before the client reads any more of the body, so before it can fail.
      if (streamed->answered && self->upstreams.size() > 1) {
        if (body.sized) body.sized->hold_failure();
        if (body.chunked) body.chunked->hold_failure();
        streamed->body = body.sized;
        streamed->chunked = body.chunked;
        streamed->head = head;
      }
    };
    auto entry = co_await self->fetch_upstream(ex, target, is_blocking, std::move(on_head), *streamed);
    if (streamed->answered) {
      // The waiters have had the head and the bytes as they came; the complete object (with its
      // ETag) takes the streamed entry's place. A failed stream's entry is never served again, and
      // its bytes leave the cache's count now.
      if (entry->status == 200 && entry->expires > entry->stored)
        self->cache.store(key, entry);
      else
        self->cache.erase(key, streamed->entry.get());
      co_return;
    }
    if (entry->status == 200 || entry->status == 404) {
      if (entry->expires > entry->stored) self->cache.store(key, entry);
    }
    if (entry->status == 200) self->learn_part_target(target, *entry);
    self->answer_waiters(key, entry);
    if (is_blocking && entry->status == 200) self->prefetch_newest_part(ex, target, *entry);
  }

  // A blocking reload's answer comes the moment a new part is published, and every viewer that
  // gets it asks for that part at once. Fetching the part now, while the playlist goes out, puts
  // it in the cache (as a file, sent with sendfile) before those requests arrive, instead of
  // the first of them paying for the upstream round trip and the rest waiting on it. Through a
  // flight like any miss: never more than one upstream request per part.
  void prefetch_newest_part(const asio::any_io_executor& ex, std::string_view playlist, const Entry& entry) {
    if (entry.content_type.find("mpegurl") == std::string::npos || entry.stream || entry.source || entry.file) return;
    auto text = as_chars(entry.body.view());
    auto at = text.rfind("#EXT-X-PART:");
    if (at == std::string_view::npos) return;
    auto line = text.substr(at, text.find('\n', at) - at);
    if (line.find("BYTERANGE") != std::string_view::npos) return;  // a range of a growing segment
    auto u = line.find("URI=\"");
    if (u == std::string_view::npos) return;
    auto uri = line.substr(u + 5);
    uri = uri.substr(0, uri.find('"'));
    // Plain relative names only (what StreamFlex origins list); anything else is left to viewers.
    if (uri.empty() || uri.front() == '/' || uri.find_first_of("?:") != std::string_view::npos ||
        uri.find("..") != std::string_view::npos)
      return;
    auto dir = playlist.substr(0, playlist.find('?'));
    dir = dir.substr(0, dir.rfind('/') + 1);
    if (dir.empty()) return;
    std::string key;
    key.reserve(dir.size() + uri.size());
    key.append(dir).append(uri);
    if (cache.find(key, Clock::now())) return;
    {
      std::lock_guard lock(flights_mu);
      if (flights.contains(key)) return;          // already on its way
      if (cache.find(key, Clock::now())) return;  // arrived since the first look (see serve)
      flights.try_emplace(key);
    }
    prefetches.Increment();
    std::string target = key;
    asio::co_spawn(ex, fetch(shared_from_this(), ex, std::move(key), std::move(target), false), asio::detached);
  }

  // The upstream's head arrived with a body still to come: a large object, or one of unknown
  // length (chunked: an open LL-DASH segment the origin is still producing), is cached and handed
  // to every waiter now, its body following as it arrives (shared, not copied per waiter; an
  // unknown length goes on with chunked coding, chunk by chunk). Playlists and MPDs wait for their
  // whole body (a viewer's token may rewrite them). A body of unknown length counts in the cache
  // as its pieces arrive. Returns the entry the waiters were answered with, or null.
  std::shared_ptr<const Entry> on_upstream_head(const std::string& key, std::string_view target,
                                                const http::ClientResponse& head, const http::ArrivingBody& body) {
    if (head.status != 200 || (body.sized && body.sized->size() < kStreamFrom)) return nullptr;
    auto type = head.header("content-type");
    if (type.find("mpegurl") != std::string::npos || type.find("dash+xml") != std::string::npos) return nullptr;
    std::shared_ptr<const Entry> entry = make_entry(head, target, body.sized, body.chunked);
    if (entry->expires > entry->stored) {
      cache.store(key, entry);
      // Told on the fetching thread as each piece is published, until the body ends or fails (the
      // fetch, which holds this Impl, lasts that long).
      if (body.chunked) body.chunked->on_append([this, key, e = entry.get()](std::size_t n) { cache.grow(key, e, n); });
    }
    answer_waiters(key, entry);
    return entry;
  }

  // Answers every request waiting for `key` with `entry` and ends the flight.
  void answer_waiters(const std::string& key, const std::shared_ptr<const Entry>& e) {
    const Entry& entry = *e;
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(flights_mu);
      auto it = flights.find(key);
      if (it != flights.end()) {
        waiters = std::move(it->second.waiters);
        flights.erase(it);
      }
    }
    waiting.Decrement(static_cast<double>(waiters.size()));
    bool first = true;
    http::ResponderBatch batch;  // one hand-over per I/O thread: all heads go out before any body
    for (auto& w : waiters) {
      const char* result = entry.status >= 500 ? "ERROR" : first ? "MISS" : "COALESCED";
      first = false;
      if (needs_whole(w.request, entry))
        answer_when_whole(w.responder, w.request, e, result, w.start);
      else
        finish(w.responder, w.request, respond(entry, w.request, w.start), result, w.start, &batch);
    }
    batch.send();
  }

  // An HTTP/1.0 viewer has no chunked coding: an answer of unknown length would reach it delimited
  // by the connection's end, and a body broken off upstream would look complete. Like a careful
  // proxy the edge answers it only once the object is whole, with Content-Length.
  static bool needs_whole(const http::Request& req, const Entry& e) {
    return req.version < 11 && e.source && !e.source->ended();
  }

  // Answers `res` once `e`'s body of unknown length has arrived: with the whole of it (Content-
  // Length), or 502 if it broke off. No timer: the held route's hold time (then its 504 fallback)
  // bounds the wait, and the fetch's stall deadline bounds the body.
  void answer_when_whole(const http::Responder& res, const http::Request& req, std::shared_ptr<const Entry> e,
                         const char* result, Clock::time_point start) {
    waiting.Increment();
    auto source = e->source;
    source->when_finished(req.executor, [self = shared_from_this(), res, req, e = std::move(e), result, start] {
      self->waiting.Decrement();
      if (e->source->failed())
        return self->finish(res, req, error(502, "the upstream broke off the body\n"), "ERROR", start);
      self->finish(res, req, self->respond(*e, req, Clock::now()), result, start);
    });
  }

  // Asks the upstreams in order (route_of: the stream's own upstream, then healthy ones, then the
  // rest) until one answers; a failure, a reset or a stall past the deadline marks that upstream
  // down and moves on, so the viewer sees no error. A 404, or a playlist whose source is away
  // there (not_there), is asked of the next upstream too (the stream may be live there only) and
  // serves only if no other upstream has better. Once `streamed` is answered (by `on_head`) the
  // waiters have the head and part of the body: a failure then goes to resume_body(). A blocking
  // reload races the upstreams instead (race_upstreams).
  asio::awaitable<std::shared_ptr<const Entry>> fetch_upstream(asio::any_io_executor ex, const std::string& target,
                                                               bool is_blocking, http::OnHead on_head,
                                                               Streamed& streamed) {
    auto timeout = is_blocking ? config.blocking_timeout : config.upstream_timeout;
    std::vector<std::pair<std::string, std::string>> headers{{"Via", "1.1 " + config.id}};
    // The edge's own credential for protected streams (the viewers' tokens are checked here, and
    // the cached object is shared by all of them).
    auto stream = auth::live_stream_of(target);
    if (!stream.empty() && tokens.has_keys())
      headers.emplace_back(std::string(auth::kTokenHeader), tokens.upstream_token(stream));
    auto order = route_of(stream);
    if (is_blocking && order.size() > 1 && config.hedge_parts > 0) {
      auto [r, by] = co_await race_upstreams({ex, target, headers, timeout, order}, hedge_delay(stream));
      if (!r) co_return no_upstream_answered();
      if (by != order.front() && r->status < 400 && !not_there(*r)) prefer(stream, *by);
      co_return make_entry(*r, target);
    }
    std::optional<http::ClientResponse> not_found;
    for (auto* u : order) {
      auto r = co_await ask(ex, *u, target, headers, timeout, on_head);
      if (!r) {
        if (streamed.answered) {
          if (streamed.body || streamed.chunked) {
            if (auto e = co_await resume_body({ex, target, headers, timeout, order}, u, streamed)) co_return e;
          }
          break;
        }
        continue;
      }
      if (not_there(*r) && u != order.back()) {
        if (!not_found) not_found = std::move(*r);
        continue;
      }
      if (u != order.front() && r->status < 400 && !not_there(*r)) prefer(stream, *u);
      co_return make_entry(*r, target);
    }
    if (not_found) co_return make_entry(*not_found, target);
    co_return no_upstream_answered();
  }

  // 404, or a playlist the origin answered while the stream's source is away there
  // (hls::kSourceHeader; the client keeps header names in lower case).
  static bool not_there(const http::ClientResponse& r) {
    return r.status == 404 || r.header("x-sf-source") == hls::kSourceAway;
  }

  // -- which upstream serves a stream --
  // An upstream that answered a stream when the first in order did not (it lost that stream's
  // ingest, and answered late, 503 or 404) keeps the stream until it fails it in turn: its
  // objects and the playlists naming them then come from one origin. The stream's part target
  // (from its playlists) times the hedge.
  struct Route {
    const Upstream* preferred = nullptr;
    std::chrono::milliseconds part_target{0};
  };
  static constexpr std::size_t kMaxRoutes = 100000;  // streams remembered; past it, forgotten all at once

  // The upstreams in the order `stream` asks them: its own one if up, the other healthy ones, then
  // those marked down (a probe may be wrong, and it is better than no answer).
  std::vector<Upstream*> route_of(std::string_view stream) {
    const Upstream* preferred = nullptr;
    if (!stream.empty() && upstreams.size() > 1) {
      std::lock_guard lock(routes_mu);
      if (auto it = routes.find(stream); it != routes.end()) preferred = it->second.preferred;
    }
    std::vector<Upstream*> order;
    order.reserve(upstreams.size());
    if (preferred && !preferred->up) preferred = nullptr;
    for (auto& u : upstreams)
      if (u.get() == preferred) order.push_back(u.get());
    for (auto& u : upstreams)
      if (u->up && u.get() != preferred) order.push_back(u.get());
    for (auto& u : upstreams)
      if (!u->up) order.push_back(u.get());
    return order;
  }

  void prefer(std::string_view stream, const Upstream& u) {
    if (stream.empty()) return;
    {
      std::lock_guard lock(routes_mu);
      if (routes.size() >= kMaxRoutes) routes.clear();
      auto& route = routes.try_emplace(std::string(stream)).first->second;
      if (route.preferred == &u) return;
      route.preferred = &u;
    }
    log::info("edge", "stream moved to another upstream", {{"stream", std::string(stream)}, {"upstream", u.name}});
  }

  std::chrono::milliseconds hedge_delay(std::string_view stream) {
    std::chrono::milliseconds part_target = 1000ms;  // until the stream's playlist told
    {
      std::lock_guard lock(routes_mu);
      if (auto it = routes.find(stream); it != routes.end() && it->second.part_target.count() > 0)
        part_target = it->second.part_target;
    }
    return part_target * config.hedge_parts;
  }

  // A media playlist's EXT-X-PART-INF:PART-TARGET, remembered for its stream.
  void learn_part_target(std::string_view target, const Entry& entry) {
    if (upstreams.size() < 2 || entry.content_type.find("mpegurl") == std::string::npos || entry.source || entry.file)
      return;
    auto stream = auth::live_stream_of(target);
    auto text = as_chars(entry.body.view());
    auto at = text.find("PART-TARGET=");
    if (stream.empty() || at == std::string_view::npos) return;
    auto value = text.substr(at + 12);
    double seconds = 0;
    std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (!(seconds > 0.0 && seconds <= 60.0)) return;
    std::chrono::milliseconds part_target{static_cast<std::int64_t>(seconds * 1000 + 0.5)};
    std::lock_guard lock(routes_mu);
    if (routes.size() >= kMaxRoutes) routes.clear();
    routes.try_emplace(std::string(stream)).first->second.part_target = part_target;
  }

  // One request as the upstreams are asked it: where it runs, what is sent, and the upstreams in
  // the order they are tried.
  struct Ask {
    asio::any_io_executor ex;
    const std::string& target;
    const std::vector<std::pair<std::string, std::string>>& headers;
    std::chrono::milliseconds timeout;
    const std::vector<Upstream*>& order;
  };

  // Where the requests of one race meet; they and the racing fetch run on one I/O thread.
  struct Finish {
    explicit Finish(const asio::any_io_executor& ex) : wake(ex) {}
    asio::steady_timer wake;  // cancelled when a request ends
    std::optional<http::ClientResponse> answer;
    const Upstream* by = nullptr;
    std::optional<http::ClientResponse> not_there;  // the first such answer
    const Upstream* not_there_by = nullptr;
    std::size_t running = 0;
  };

  // A blocking reload, asked of the upstreams in order one after another: the next is asked when
  // the last one asked failed or answered not_there, or has not answered within `hedge` (late: up,
  // but that stream is not coming there), and the first answer serves (a not_there one only if
  // nothing better came). The late request is left to end on its own, its answer unused. Returns
  // the answer and whose it is, or nothing if every upstream failed.
  asio::awaitable<std::pair<std::optional<http::ClientResponse>, const Upstream*>> race_upstreams(
      const Ask& race, std::chrono::milliseconds hedge) {
    auto finish = std::make_shared<Finish>(race.ex);
    std::size_t next = 0;
    bool hedged = false;
    auto ask_next = [&] {
      ++finish->running;
      asio::co_spawn(
          race.ex,
          ask_for_race(shared_from_this(), finish, *race.order[next++], race.target, race.headers, race.timeout),
          asio::detached);
    };
    ask_next();
    while (!finish->answer && (finish->running > 0 || next < race.order.size())) {
      if (finish->running == 0) {  // every upstream asked so far failed
        ask_next();
        continue;
      }
      bool can_hedge = next < race.order.size();
      if (can_hedge)
        finish->wake.expires_after(hedge);
      else
        finish->wake.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await finish->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!ec && can_hedge && !finish->answer) {
        log::info("edge", "blocking request late; asking the next upstream too",
                  {{"target", race.target}, {"late", race.order[next - 1]->name}, {"next", race.order[next]->name}});
        ask_next();
        hedged = true;
      }
    }
    if (!finish->answer && finish->not_there) {
      finish->answer = std::move(finish->not_there);
      finish->by = finish->not_there_by;
    }
    if (hedged)
      hedges.Add({{"served_by", !finish->by                        ? "none"
                                : finish->by == race.order.front() ? "first"
                                                                   : "next"}})
          .Increment();
    co_return std::pair{std::move(finish->answer), finish->by};
  }

  static asio::awaitable<void> ask_for_race(std::shared_ptr<Impl> self, std::shared_ptr<Finish> finish, Upstream& u,
                                            std::string target,
                                            std::vector<std::pair<std::string, std::string>> headers,
                                            std::chrono::milliseconds timeout) {
    auto r = co_await self->ask(finish->wake.get_executor(), u, target, headers, timeout);
    --finish->running;
    if (r && not_there(*r)) {
      if (!finish->not_there) {
        finish->not_there = std::move(*r);
        finish->not_there_by = &u;
      }
    } else if (r && !finish->answer) {
      finish->answer = std::move(*r);
      finish->by = &u;
    }
    finish->wake.cancel();
  }

  // One GET to `u`, timed and counted; a failure or a 5xx gives nullopt (try the next upstream)
  // and marks `u` down, except a 503 to a blocking reload: that is the origin's answer to a part
  // that did not come within its hold (one stream's ingest there, not the server), and `u` stays up
  // for the other streams.
  asio::awaitable<std::optional<http::ClientResponse>> ask(
      asio::any_io_executor ex, Upstream& u, const std::string& target,
      const std::vector<std::pair<std::string, std::string>>& headers, std::chrono::milliseconds timeout,
      http::OnHead on_head = {}) {
    auto t0 = Clock::now();
    bool held = target.find("_HLS_msn=") != std::string::npos;  // a blocking reload: held there
    auto r = co_await pool_for(ex, u, held).request("GET", target, headers, timeout, std::move(on_head));
    upstream_seconds.Observe(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!r || r->status >= 500) {
      upstream_requests.Add({{"upstream", u.name}, {"result", r ? "5xx" : "failed"}}).Increment();
      bool held_too_long = held && r && r->status == 503;
      if (!held_too_long && u.up.exchange(false))
        log::warn("edge", "upstream marked down",
                  {{"upstream", u.name}, {"error", r ? std::to_string(r->status) : r.error().message()}});
      co_return std::nullopt;
    }
    upstream_requests.Add({{"upstream", u.name}, {"result", "ok"}}).Increment();
    co_return std::move(*r);
  }

  // Reads another upstream's answer for an object whose chunked body broke off: its bytes, in
  // order, must be those the broken body already gave its viewers; what follows them is appended
  // to that body (shared pieces, not copied) as it arrives.
  class Continuation {
   public:
    explicit Continuation(http::ChunkedBody& into) : into_(into), given_(into.pieces()) {
      for (auto& p : given_) have_ += p.size();
    }
    // The other answer's next bytes; false from the first byte that differs on.
    bool feed(const Bytes& b) {
      if (differs_) return false;
      std::size_t at = 0;
      while (at < b.size() && seen_ < have_) {
        const Bytes& g = given_[piece_];
        std::size_t n = std::min(b.size() - at, g.size() - in_piece_);
        if (std::memcmp(b.data() + at, g.data() + in_piece_, n) != 0) {
          differs_ = true;
          return false;
        }
        at += n;
        seen_ += n;
        in_piece_ += n;
        if (in_piece_ == g.size()) {
          ++piece_;
          in_piece_ = 0;
        }
      }
      if (at < b.size()) {
        into_.append(b.share_from(at));
        seen_ += b.size() - at;
      }
      return true;
    }
    // The other answer ended: it was the same object if nothing differed and it was not shorter.
    bool same() const { return !differs_ && seen_ >= have_; }
    bool fed_as_it_came = false;  // the other answer was chunked, its pieces fed as they came

   private:
    http::ChunkedBody& into_;
    std::vector<Bytes> given_;
    std::size_t have_ = 0, seen_ = 0, piece_ = 0, in_piece_ = 0;
    bool differs_ = false;
  };

  // The upstream `failed` broke off a body that the waiters are already receiving. Origins fed
  // the same source package it identically (the same bytes for the same object name), so the next
  // upstream that answers is asked for the object, and if every byte already sent agrees the rest
  // finishes the waiters' body; they never notice.
  // - Known length: that upstream's whole object, of the same length, then the rest copied once
  //   into the block (SharedBody::finish_with).
  // - Unknown length (an open LL-DASH segment still being produced): that upstream's answer read as
  //   it arrives, through a Continuation that appends the rest to the viewers' body live; the body
  //   ends when that answer ends. If that upstream fails too, the next one continues from there.
  // Otherwise (a different ingest, an upstream without the object yet, none answering) the body
  // fails as it would have: the viewers' connections close short, which players retry. Returns the
  // complete entry, or null.
  asio::awaitable<std::shared_ptr<const Entry>> resume_body(const Ask& retry, const Upstream* failed,
                                                            Streamed& streamed) {
    const auto& [ex, target, headers, timeout, order] = retry;
    const char* result = "failed";
    for (auto* u : order) {
      if (u == failed) continue;
      std::shared_ptr<Continuation> cont;
      http::OnHead on_head;
      if (streamed.chunked) {
        cont = std::make_shared<Continuation>(*streamed.chunked);
        on_head = [cont](const http::ClientResponse& head, const http::ArrivingBody& arriving) {
          if (head.status != 200 || !arriving.chunked) return;
          cont->fed_as_it_came = true;
          // Told on this thread as each piece is published; dropped when the answer ends or fails.
          arriving.chunked->on_append([cont, src = arriving.chunked.get(), next = std::size_t{0}](std::size_t) mutable {
            std::vector<Bytes> pieces;
            next = src->read(next, pieces).next;
            for (auto& p : pieces)
              if (!cont->feed(p)) return;
          });
        };
      }
      auto r = co_await ask(ex, *u, target, headers, timeout, std::move(on_head));
      if (!r) continue;  // a chunked body goes on from wherever this one got to
      bool finished = false;
      if (r->status == 200 && cont) {
        if (!cont->fed_as_it_came) cont->feed(r->body);  // the segment was complete there: one block
        finished = cont->same();
        if (finished) streamed.chunked->end();
      } else if (r->status == 200) {
        http::SharedBody& body = *streamed.body;
        auto other = r->body.view();
        finished = other.size() == body.size() && std::memcmp(other.data(), body.data(), body.available()) == 0 &&
                   body.finish_with(other.subspan(body.available()));
      }
      if (!finished) {
        result = "differed";
        log::warn("edge", "broken-off body not finished: the next upstream's object differs",
                  {{"object", target}, {"upstream", u->name}, {"status", std::to_string(r->status)}});
        break;
      }
      resumes.Add({{"result", "resumed"}}).Increment();
      log::info("edge", "broken-off body finished from the next upstream", {{"object", target}, {"upstream", u->name}});
      http::ClientResponse whole = std::move(streamed.head);
      whole.body = streamed.chunked ? streamed.chunked->joined() : streamed.body->bytes();
      co_return make_entry(whole, target);
    }
    resumes.Add({{"result", result}}).Increment();
    if (streamed.chunked)
      streamed.chunked->fail_now();
    else
      streamed.body->fail_now();
    co_return nullptr;
  }

  static std::shared_ptr<const Entry> no_upstream_answered() {
    auto e = std::make_shared<Entry>();
    e->status = 502;
    e->content_type = "text/plain; charset=utf-8";
    e->cache_control = "no-store";
    e->body = Bytes::copy_of(as_bytes("no upstream answered\n"));
    e->stored = e->expires = Clock::now();
    return e;
  }

  // The stream's access state: created for a real object (200) or a marked answer, looked up for
  // anything else, so requests for made-up streams leave nothing behind.
  std::shared_ptr<StreamAccessState> access_state(std::string_view stream, bool create) {
    if (stream.empty()) return nullptr;
    std::lock_guard lock(access_mu);
    auto it = access_states.find(stream);
    if (it != access_states.end()) return it->second;
    if (!create) return nullptr;
    return access_states.emplace(std::string(stream), std::make_shared<StreamAccessState>()).first->second;
  }

  // `stream`, `source`: the body is still arriving there, of known or unknown length (no ETag
  // until it is complete).
  std::shared_ptr<const Entry> make_entry(const http::ClientResponse& r, std::string_view target,
                                          std::shared_ptr<const http::SharedBody> stream = nullptr,
                                          std::shared_ptr<const http::ChunkedBody> source = nullptr) {
    auto e = std::make_shared<Entry>();
    e->status = r.status;
    e->content_type = r.header("content-type");
    e->cache_control = r.header("cache-control");
    // The upstream says whether the stream needs tokens on every object it served for it (the client
    // keeps header names in lower case); answers without the marker (404s) change nothing.
    auto marker = r.header("x-sf-access");
    bool marked = marker == auth::kAccessToken || marker == auth::kAccessPublic;
    e->access = access_state(auth::live_stream_of(target), marked || r.status == 200);
    if (e->access && marked) e->access->token_required.store(marker == auth::kAccessToken, std::memory_order_relaxed);
    e->body = stream ? stream->bytes() : r.body;
    e->stream = std::move(stream);
    e->source = std::move(source);
    e->stored = Clock::now();
    auto age = max_age(e->cache_control);
    std::int64_t upstream_age = 0;
    if (auto a = r.header("age"); !a.empty()) upstream_age = std::atoll(a.c_str());
    e->upstream_age = upstream_age;
    // Fresh for what is left of max-age once the upstream's Age is taken off.
    e->expires = e->stored + std::chrono::seconds(std::max<std::int64_t>(0, age - upstream_age));
    // A strong validator from the bytes themselves: the same object has the same ETag on every
    // edge and after every refetch (hashed once per fetch, never per request).
    if (!e->stream && !e->source)
      e->etag = fmt::format("\"{:x}-{:x}\"", fnv1a(as_chars(e->body.view())), e->body.size());
    // A large complete media object is copied once into an unnamed temporary file (else a sealed
    // memfd; http::FileBody::spare_copy, as the origin's parts) and sent with sendfile(2) by every
    // hit: per answer the kernel takes page references instead of copying the bytes from user
    // memory (the copy was most of the origin's CPU for large parts, the same here). Playlists
    // and MPDs stay in memory (a viewer's token may rewrite them).
    if (!e->stream && !e->source && e->status == 200 && e->body.size() >= kFileFrom &&
        e->content_type.find("mpegurl") == std::string::npos && e->content_type.find("dash+xml") == std::string::npos) {
      if (auto file = http::FileBody::spare_copy(std::span(&e->body, 1))) {
        e->file = std::move(file);
        e->body = {};
      }
    }
    return e;
  }

  http::Response respond(const Entry& e, const http::Request& req, Clock::time_point now) const {
    http::Response r;
    std::string viewer_token;
    bool token_required = e.access && e.access->token_required.load(std::memory_order_relaxed);
    if (e.access)
      r.headers.emplace_back(std::string(auth::kAccessHeader),
                             std::string(token_required ? auth::kAccessToken : auth::kAccessPublic));
    if (token_required) {
      viewer_token = req.param(auth::kTokenParam);
      auto shield_token = viewer_token.empty() ? req.header(auth::kTokenHeader) : std::string();
      auto stream = auth::live_stream_of(req.path);
      auto d = tokens.check(viewer_token.empty() ? shield_token : viewer_token, stream, req.remote);
      if (d.status) {
        r = error(d.status, fmt::format("{}\n", d.message));
        r.headers.emplace_back(std::string(auth::kAccessHeader), std::string(auth::kAccessToken));
        return r;
      }
    }
    if (e.status == 200 && !e.etag.empty() && req.header("if-none-match") == e.etag) {
      r.status = 304;
    } else if (!viewer_token.empty() && e.status == 200 && e.content_type.find("mpegurl") != std::string::npos) {
      // The cached body is token-free; this viewer's copy names every URL with its token.
      r.body = auth::add_token_to_hls(as_chars(e.body.view()), viewer_token);
    } else if (!viewer_token.empty() && e.status == 200 && e.content_type.find("dash+xml") != std::string::npos) {
      r.body = auth::add_token_to_dash(as_chars(e.body.view()), viewer_token);
    } else {
      r.status = e.status;
      if (e.source && req.version < 11 && e.source->ended())
        r.pieces = e.source->pieces();  // whole: with Content-Length (needs_whole)
      else if (e.source)
        r.source = e.source;  // chunked, from the first piece, whether or not it has ended
      else if (e.stream && !e.stream->complete())
        r.stream = e.stream;
      else if (e.file)
        r.file = e.file;
      else
        r.pieces.push_back(e.body);
    }
    r.content_type = e.content_type.empty() ? "application/octet-stream" : e.content_type;
    if (!e.cache_control.empty()) r.headers.emplace_back("Cache-Control", e.cache_control);
    if (!e.etag.empty()) r.headers.emplace_back("ETag", e.etag);
    auto age = e.upstream_age + std::chrono::duration_cast<std::chrono::seconds>(now - e.stored).count();
    r.headers.emplace_back("Age", std::to_string(std::max<std::int64_t>(0, age)));
    return r;
  }

  static http::Response error(int status, std::string text) {
    auto r = http::Response::text(status, std::move(text));
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }

  void finish(const http::Responder& res, const http::Request& req, http::Response r, const char* result,
              Clock::time_point start, http::ResponderBatch* batch = nullptr) {
    if (res.answered()) {
      // The request's hold ran out first and the server sent the route's 504 fallback: book
      // that, not the answer that came too late (it is dropped unsent below).
      r = error(504, std::string(kHoldExpired));
      result = "ERROR";
    }
    r.headers.emplace_back("X-Cache", result);
    auto size = r.size();
    auto& counters = by_result(result);
    counters.requests->Increment();
    counters.bytes->Increment(static_cast<double>(size));
    // /live/<stream>/<rendition>/<object> or /live/<stream>/<object>
    std::string_view p(req.path), stream, rendition, object;
    if (p.starts_with("/live/")) {
      p.remove_prefix(6);
      stream = p.substr(0, p.find('/'));
      auto last = p.rfind('/');
      object = last == std::string_view::npos ? p : p.substr(last + 1);
      auto mid = p.substr(0, last == std::string_view::npos ? 0 : last);
      if (auto s = mid.find('/'); s != std::string_view::npos) rendition = mid.substr(s + 1);
    }
    // Viewers: players served (not refused), not other edges fetching through this one.
    if (!stream.empty() && r.status < 400 && req.header_view("via").empty())
      viewers.seen(stream, req.param_view(auth::kTokenParam), req.remote, req.header_view("user-agent"), now_ms());
    auto event = [&] {
      double ttfb_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      return AccessEvent{stream, rendition, object, size, r.status, ttfb_ms, result, req.remote};
    };
    if (r.source && req.method != "HEAD") {
      // A body of unknown length (chunked, still arriving) has no size yet: its bytes are counted
      // as they are written, and its access event, with the bytes this viewer was sent, goes out
      // when the answer ends.
      auto tally = access ? std::make_shared<SentTally>(access, event()) : nullptr;
      r.on_sent = [c = counters.bytes, tally](std::size_t n) {
        c->Increment(static_cast<double>(n));
        if (tally) tally->sent(n);
      };
    } else if (access) {
      access->on_access(event());
    }
    if (batch)
      batch->add(res, std::move(r));
    else
      res(std::move(r));
  }

  // -- upstream connections: two pools per upstream per I/O thread --
  // Blocking reloads have their own (`held`): the origin holds each until its part exists, a part
  // target or more, and one is in flight per rendition and directive set, so a few dozen streams
  // would fill the object pool with them and every part and segment would queue behind.
  using PoolKey = std::tuple<const Impl*, const Upstream*, bool>;
  http::Pool& pool_for(const asio::any_io_executor& ex, Upstream& u, bool held) {
    // Each I/O thread runs one io_context, so a thread-local pool is bound to that context.
    auto& p = thread_pools()[{this, &u, held}];
    if (!p)
      p = std::make_unique<http::Pool>(
          ex, u.endpoint,
          static_cast<std::size_t>(held ? config.upstream_held_connections : config.upstream_connections));
    return *p;
  }

  // Each I/O thread's upstream connections (pools per edge and upstream), used on that thread only.
  static std::map<PoolKey, std::unique_ptr<http::Pool>>& thread_pools() {
    thread_local std::map<PoolKey, std::unique_ptr<http::Pool>> pools;
    return pools;
  }

  bool another_up(const Upstream& u) const {
    return std::any_of(upstreams.begin(), upstreams.end(), [&](auto& o) { return o.get() != &u && o->up; });
  }

  // Ends the requests in flight to `u` on every I/O thread: each fails over to the next upstream.
  void abort_requests_to(const Upstream& u) {
    for (auto* ctx : pool.contexts())
      asio::post(*ctx, [self = shared_from_this(), &u] {
        auto& pools = thread_pools();
        for (bool held : {false, true})
          if (auto it = pools.find({self.get(), &u, held}); it != pools.end()) it->second->abort();
      });
  }

  // -- health: each upstream's /healthz, every health_interval, on one I/O thread --
  struct Probe {
    Probe(asio::any_io_executor ex, Upstream* u) : timer(ex), conn(ex, u->endpoint), upstream(u) {}
    asio::steady_timer timer;
    http::Connection conn;
    Upstream* upstream;
  };

  static asio::awaitable<void> probe(std::shared_ptr<Impl> self, std::shared_ptr<Probe> p) {
    std::vector<std::pair<std::string, std::string>> headers{{"Via", "1.1 " + self->config.id}};
    while (!self->stopping) {
      // Arguments as named values: g++ 12 mishandles braced temporaries inside co_await.
      auto r = co_await p->conn.request("GET", "/healthz", headers, self->config.health_timeout);
      if (self->stopping) break;
      bool ok = r && r->status < 500;
      if (ok != p->upstream->up.exchange(ok))
        log::info("edge", ok ? "upstream up" : "upstream marked down",
                  {{"upstream", p->upstream->name}, {"probe", r ? std::to_string(r->status) : r.error().message()}});
      // Dead or hung: what it still holds (blocking requests, bodies) will not come. Retried now on
      // the next upstream, not after their own deadlines; a body already streaming is resumed. With
      // no other upstream up, the requests wait on (a short hang then costs viewers nothing).
      if (!ok && self->another_up(*p->upstream)) self->abort_requests_to(*p->upstream);
      p->timer.expires_after(self->config.health_interval);
      boost::system::error_code ec;
      co_await p->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  std::vector<std::shared_ptr<Probe>> probes;

  net::IoPool& pool;
  Config config;
  Cache cache;
  auth::TokenChecker tokens;
  std::vector<std::unique_ptr<Upstream>> upstreams;
  std::unique_ptr<http::Server> server;
  std::shared_ptr<ViewerAuth> auth;
  std::shared_ptr<AccessLog> access;
  std::mutex access_mu;  // guards `access_states`: taken when an upstream answer is stored, never on a hit
  std::map<std::string, std::shared_ptr<StreamAccessState>, std::less<>> access_states;
  std::mutex flights_mu;  // guards `flights`: taken on a miss, never on a hit
  std::map<std::string, Flight, std::less<>> flights;
  std::mutex routes_mu;  // guards `routes`: taken once per upstream fetch, never on a hit
  std::map<std::string, Route, std::less<>> routes;
  std::atomic<bool> stopping{false};

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Family<prometheus::Counter>& upstream_requests;
  prometheus::Histogram& upstream_seconds;
  prometheus::Counter& coalesced;
  prometheus::Family<prometheus::Counter>& resumes;
  prometheus::Family<prometheus::Counter>& hedges;
  prometheus::Counter& prefetches;
  prometheus::Gauge& waiting;
  ViewerCount viewers;
  std::shared_ptr<ScrapeGauges> scrape;

  // Family::Add takes a lock and builds a label map: resolve the four results once.
  struct ResultCounters {
    prometheus::Counter* requests;
    prometheus::Counter* bytes;
  };
  std::array<ResultCounters, 4> results{};
  ResultCounters& by_result(std::string_view r) {
    std::size_t i = r == "HIT" ? 0 : r == "MISS" ? 1 : r == "COALESCED" ? 2 : 3;
    return results[i];
  }
  void init_counters() {
    const char* names[] = {"HIT", "MISS", "COALESCED", "ERROR"};
    for (std::size_t i = 0; i < 4; ++i)
      results[i] = {&requests.Add({{"cache", names[i]}}), &bytes.Add({{"cache", names[i]}})};
    for (const char* r : {"resumed", "differed", "failed"}) resumes.Add({{"result", r}});
  }
};

}  // namespace sf::edge

namespace sf::edge {

Edge::Edge(net::IoPool& pool, Config config, Metrics& metrics)
    : impl_(std::make_shared<Impl>(pool, std::move(config), metrics)) {
  impl_->scrape = std::make_shared<ScrapeGauges>(*impl_->server, impl_->cache, impl_->viewers);
  metrics.add_collectable(impl_->scrape);
}

Edge::~Edge() = default;

void Edge::set_viewer_auth(std::shared_ptr<ViewerAuth> auth) {
  impl_->auth = std::move(auth);
}
std::map<std::string, std::int64_t> Edge::viewers() const {
  return impl_->viewers.counts(now_ms());
}

void Edge::set_access_log(std::shared_ptr<AccessLog> log) {
  impl_->access = std::move(log);
}

void Edge::start() {
  impl_->server->start();
  for (auto& u : impl_->upstreams) {
    auto& ctx = impl_->pool.next();
    auto p = std::make_shared<Impl::Probe>(ctx.get_executor(), u.get());
    impl_->probes.push_back(p);
    asio::co_spawn(ctx, Impl::probe(impl_, p), asio::detached);
  }
  log::info("edge", "HTTP listening", {{"listen", impl_->config.listen}, {"port", port()}, {"id", impl_->config.id}});
}

void Edge::stop() {
  impl_->stopping = true;
  impl_->server->stop();
  for (auto& p : impl_->probes)
    asio::post(p->timer.get_executor(), [p] {
      p->timer.cancel();
      p->conn.close();
    });
}

std::uint16_t Edge::port() const {
  return impl_->server->port();
}

}  // namespace sf::edge
