#include "sf/origin/origin.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <unordered_map>

#include "cmaf_ingest.h"
#include "cmaf_upload.h"
#include "sf/core/log.h"
#include "sf/core/secure.h"
#include "sf/hls/playlist.h"
#include "sf/http/server.h"
#include "stream.h"

namespace sf::origin {
namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "s12.m4s" -> (12, nullopt); "s12.p3.m4s" -> (12, 3); "init2.mp4" -> init 2.
struct ObjectName {
  enum Kind { playlist, segment, part_object, init, unknown } kind = unknown;
  std::uint64_t msn = 0;
  std::uint64_t part = 0;
};

ObjectName parse_object(std::string_view f) {
  ObjectName o;
  if (f == "index.m3u8") {
    o.kind = ObjectName::playlist;
    return o;
  }
  if (f.starts_with("init") && f.ends_with(".mp4")) {
    if (parse_u64(f.substr(4, f.size() - 8), o.msn)) o.kind = ObjectName::init;
    return o;
  }
  if (!f.starts_with("s") || !f.ends_with(".m4s")) return o;
  auto body = f.substr(1, f.size() - 5);
  auto dot = body.find(".p");
  if (dot == std::string_view::npos) {
    if (parse_u64(body, o.msn)) o.kind = ObjectName::segment;
  } else if (parse_u64(body.substr(0, dot), o.msn) && parse_u64(body.substr(dot + 2), o.part)) {
    o.kind = ObjectName::part_object;
  }
  return o;
}

http::Response with_cache(http::Response r, std::string cache_control) {
  r.headers.emplace_back("Cache-Control", std::move(cache_control));
  return r;
}

http::Response not_found(int td) {
  return with_cache(http::Response::text(404, "not found\n"), fmt::format("max-age={}", td));
}

const char* kImmutable = "public, max-age=31536000, immutable";

// A request for a token-protected stream: its responses are marked for edges, and the viewer's
// own token (from the query, not an edge's header) is written into the URLs of playlists.
struct Viewer {
  bool protect = false;
  std::string token;
};

enum class Manifest { none, hls, dash };

http::Response for_viewer(http::Response r, const Viewer& v, Manifest manifest = Manifest::none) {
  // Public streams say so too: an edge applies the latest answer to every object it cached for the
  // stream, so a visibility change reaches its cached segments.
  r.headers.emplace_back(std::string(auth::kAccessHeader),
                         std::string(v.protect ? auth::kAccessToken : auth::kAccessPublic));
  if (!v.protect) return r;
  if (v.token.empty() || manifest == Manifest::none || r.status != 200) return r;
  std::string text = std::move(r.body);
  for (auto& p : r.pieces) text.append(as_chars(p.view()));
  r.pieces.clear();
  r.body = manifest == Manifest::hls ? auth::add_token_to_hls(text, v.token) : auth::add_token_to_dash(text, v.token);
  return r;
}

}  // namespace

// Large parts go out with sendfile(2) from a file that holds the part's bytes, filled once when
// the part is first asked for: per request the kernel then takes page references instead of
// copying the megabyte from user memory (measured: most of the origin's CPU for 1 MB parts went to
// that copy). The file is an unnamed one (O_TMPFILE, read-only once filled) in the temporary
// directory ($TMPDIR, else /var/tmp), or a sealed memfd where that cannot be made: on a disk file
// system sendfile reads the page cache through the generic path, while a memfd (shmem) is looked up
// page by page (perf, 1 MB part, 100 connections: shmem_file_splice_read 20 % of the origin's
// samples against 4.6 % for filemap_splice_read in nginx serving the same bytes from ext4). Keyed
// by the part's header block, which an entry keeps alive, so a key cannot be reused by another
// part while its entry exists. Bounded in bytes, oldest out first. Thread-safe.
class PartFiles {
 public:
  explicit PartFiles(std::string dir) : dir_(std::move(dir)) {}

  static std::string default_dir() { return http::FileBody::spare_dir(); }

  static constexpr std::size_t kFrom = 128 * 1024;      // smaller parts: a gather write is cheap
  static constexpr std::size_t kMaxBytes = 256u << 20;  // a few streams' windows of 16 Mbit/s parts

  // The part's file, or null (small part, or no memfd here: the caller sends the pieces).
  std::shared_ptr<const http::FileBody> get(const Part& p) {
    std::size_t size = p.chunk.size();
    if (size < kFrom || size > kMaxBytes / 8) return nullptr;
    const std::byte* key = p.chunk.header.data();
    {
      std::lock_guard lock(mu_);
      if (auto it = map_.find(key); it != map_.end()) return it->second.file;
    }
    auto file = fill(p.chunk);
    if (!file) return nullptr;
    std::lock_guard lock(mu_);
    auto [it, fresh] = map_.try_emplace(key, Item{p.chunk.header, file});
    if (!fresh) return it->second.file;  // another thread filled it meanwhile
    order_.push_back(key);
    bytes_ += size;
    while (bytes_ > kMaxBytes && !order_.empty()) {
      auto old = map_.find(order_.front());
      order_.pop_front();
      bytes_ -= old->second.file->size;
      map_.erase(old);
    }
    return file;
  }

 private:
  // One file holding the part's header and frames in order.
  std::shared_ptr<const http::FileBody> fill(const cmaf::Chunk& chunk) const {
    std::vector<Bytes> pieces;
    pieces.reserve(chunk.payload.size() + 1);
    pieces.push_back(chunk.header);
    for (auto& b : chunk.payload) pieces.push_back(b);
    if (!dir_.empty())
      if (auto file = http::FileBody::unnamed_copy(pieces, dir_)) return file;
    return http::FileBody::sealed_copy(pieces);
  }

  struct Item {
    Bytes header;  // keeps the key's block alive
    std::shared_ptr<const http::FileBody> file;
  };
  const std::string dir_;  // empty: memfd only
  std::mutex mu_;
  std::unordered_map<const std::byte*, Item> map_;
  std::deque<const std::byte*> order_;
  std::size_t bytes_ = 0;
};

// The segment being filled, sent while it is made (DASH low latency: a client that asks for it
// early, per availabilityTimeOffset, gets the CMAF chunks cut so far at once and each next one the
// moment the packager publishes it). Positions are part indexes; the pieces are the parts' own
// header and frame buffers. Reads the stream's current view (no lock); a waiter parked in the
// stream is woken by the publish that adds a part, completes the segment or ends the stream. The
// body ends with the segment (complete on its next keyframe, at a discontinuity or at the end of
// the publish); it fails if the segment left the view unfinished (a new window), so the client
// sees a short body, never a wrong one.
class OpenSegment final : public http::BodySource {
 public:
  OpenSegment(std::shared_ptr<Stream> stream, std::string rendition, std::uint64_t msn)
      : stream_(std::move(stream)), rendition_(std::move(rendition)), msn_(msn) {}

  Progress read(std::size_t from, std::vector<Bytes>& out) const override {
    auto view = stream_->view();
    const RenditionView* r = view ? view->rendition(rendition_) : nullptr;
    const Segment* s = r ? r->find(msn_) : nullptr;
    if (!s) return {from, false, true};
    for (std::size_t i = from; i < s->parts.size(); ++i) {
      out.push_back(s->parts[i]->chunk.header);
      for (auto& b : s->parts[i]->chunk.payload) out.push_back(b);
    }
    std::size_t next = std::max(from, s->parts.size());
    if (s->complete) return {next, true, false};
    // Not complete and no publisher: nothing will complete it.
    return {next, false, !view->live};
  }

  void when_beyond(std::size_t from, const boost::asio::any_io_executor& ex,
                   std::function<void()> wake) const override {
    stream_->wait({[rendition = rendition_, msn = msn_, from](const StreamView& v) {
                     const RenditionView* r = v.rendition(rendition);
                     const Segment* s = r ? r->find(msn) : nullptr;
                     return !s || s->parts.size() > from || s->complete || !v.live;
                   },
                   [ex, wake = std::move(wake)](const StreamView&) { boost::asio::post(ex, wake); },
                   // Answered by the next part at the latest (a reader gone meanwhile costs only that).
                   [] { return false; }});
  }

 private:
  std::shared_ptr<Stream> stream_;
  std::string rendition_;
  std::uint64_t msn_;
};

struct Origin::Impl : std::enable_shared_from_this<Origin::Impl> {
  Impl(net::IoPool& p, Config c, Metrics& m)
      : pool(p),
        config(std::move(c)),
        requests(prometheus::BuildCounter()
                     .Name("streamflex_origin_requests_total")
                     .Help("Origin HTTP requests by object kind and status")
                     .Register(m.registry())),
        parts_published(prometheus::BuildCounter()
                            .Name("streamflex_origin_parts_published_total")
                            .Help("CMAF parts published")
                            .Register(m.registry())
                            .Add({})),
        served_bytes(
            prometheus::BuildCounter()
                .Name("streamflex_origin_served_bytes_total")
                .Help(
                    "Body bytes written to clients (as they leave: Range slices, streamed segments, nothing for HEAD)")
                .Register(m.registry())
                .Add({})),
        held(prometheus::BuildGauge()
                 .Name("streamflex_origin_held_requests")
                 .Help("Requests held for a part or playlist that does not exist yet")
                 .Register(m.registry())
                 .Add({})),
        reaper(p.next()) {
    auto ep = net::parse_endpoint(config.listen);
    if (!ep) throw std::runtime_error("origin.listen: expected host:port, got " + config.listen);
    http::ServerLimits limits;
    limits.cors = true;
    server = std::make_unique<http::Server>(pool, *ep, limits);
    int td = target_duration();
    auto hold = std::chrono::milliseconds(3 * td * 1000);
    // LL-HLS 6.2.5.2: a blocking request not satisfiable within 3 target durations gets 503.
    auto fallback = with_cache(http::Response::text(503, "not available in time\n"), fmt::format("max-age={}", td));
    server->route_held("GET", "/live/", hold, fallback,
                       [this](const http::Request& req, http::Responder res) { serve_live(req, std::move(res)); });
    for (const char* method : {"PUT", "POST"})
      server->route_streaming(method, "/ingest/", [this](const http::Request& req) { return ingest(req); });
    server->route_prefix("DELETE", "/ingest/", [this](const http::Request& req) {
      // Pushing encoders delete objects that left their window; the origin keeps its own window.
      // DELETE /ingest/<stream>/ (no object) is the end of the stream: it ends now, not after
      // origin.ingest_idle.
      auto [ok, file] = authorized(req);
      if (!ok) return http::Response::text(403, "forbidden\n");
      std::string stream = req.path.substr(8, req.path.find('/', 8) - 8);
      if (file.empty())
        end_pushed(stream);
      else if (file.starts_with("Streams(") && file.ends_with(")") && !rendition_of(file).empty())
        end_representation(stream, representation_of(file));  // DASH-IF: the representation stopped
      return http::Response::text(204, "");
    });
    // For edges' health probes: the origin serves (streams may still be absent).
    server->route("GET", "/healthz", [](const http::Request&) { return http::Response::text(200, "ok\n"); });
    server->route("GET", "/time", [](const http::Request&) {
      // DASH UTCTiming (urn:mpeg:dash:utc:http-iso:2014).
      auto now = std::chrono::system_clock::now();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
      auto r = http::Response::text(
          200, fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms));
      r.headers.emplace_back("Cache-Control", "no-store");
      return r;
    });
    load_web_root();
  }

  int target_duration() const { return static_cast<int>((config.segment_target.count() + 999) / 1000); }

  void load_web_root() {
    if (config.web_root.empty()) return;
    namespace fs = std::filesystem;
    if (!fs::is_directory(config.web_root)) {
      log::warn("origin", "web root not found; the player page is not served", {{"web_root", config.web_root}});
      return;
    }
    for (auto& e : fs::recursive_directory_iterator(config.web_root)) {
      if (!e.is_regular_file() || e.file_size() > 8 * 1024 * 1024) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(in)), {});
      auto rel = "/" + fs::relative(e.path(), config.web_root).generic_string();
      auto ext = e.path().extension().string();
      std::string type = ext == ".html"                    ? "text/html; charset=utf-8"
                         : ext == ".js"                    ? "text/javascript; charset=utf-8"
                         : ext == ".css"                   ? "text/css; charset=utf-8"
                         : ext == ".map" || ext == ".json" ? "application/json"
                                                           : "application/octet-stream";
      web_files[rel] = {type, Bytes::copy_of(as_bytes(data))};
    }
    auto serve = [this](const http::Request& req) {
      auto it = web_files.find(req.path == "/" ? "/index.html" : req.path);
      if (it == web_files.end()) return http::Response::text(404, "not found\n");
      http::Response r;
      r.content_type = it->second.first;
      r.pieces.push_back(it->second.second);
      r.headers.emplace_back("Cache-Control", "no-cache");
      return r;
    };
    server->route("GET", "/", serve);
    server->route_prefix("GET", "/player/", serve);
  }

  // CMAF ingest is authorised by the shared secret, sent as "Authorization: Bearer <secret>" or as
  // the path component after the stream (/ingest/<stream>/<secret>/<file>), for encoders such as
  // ffmpeg's dash muxer that cannot add headers. Returns whether it is, and the path after the
  // stream and the secret.
  std::pair<bool, std::string_view> authorized(const http::Request& req) const {
    std::string_view rest(req.path);
    rest.remove_prefix(8);  // "/ingest/"
    auto slash = rest.find('/');
    if (config.ingest_secret.empty() || slash == std::string_view::npos) return {false, {}};
    rest.remove_prefix(slash + 1);
    auto auth = req.header("authorization");
    if (auth.starts_with("Bearer ") && constant_time_equal(std::string_view(auth).substr(7), config.ingest_secret))
      return {true, rest};
    auto next = rest.find('/');
    if (next != std::string_view::npos && constant_time_equal(rest.substr(0, next), config.ingest_secret))
      return {true, rest.substr(next + 1)};
    return {false, {}};
  }

  // Decided from the request head: refusals before any body byte is read, else a sink that
  // feeds the stream's CmafIngest as boxes complete (one object, or a long-running POST).
  std::variant<http::Response, std::unique_ptr<http::BodySink>> ingest(const http::Request& req) {
    if (config.ingest_secret.empty())
      return http::Response::text(403, "CMAF ingest is off: set origin.ingest_secret\n");
    auto [ok, file] = authorized(req);
    if (!ok) {
      count("ingest", 403);
      return http::Response::text(403, "ingest secret not accepted\n");
    }
    std::string_view rest(req.path);
    rest.remove_prefix(8);
    std::string name(rest.substr(0, rest.find('/')));
    bool valid = !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (!valid) return http::Response::text(400, "bad stream name\n");
    // Manifests pushed beside the media describe what the origin derives itself.
    if (file.ends_with(".mpd") || file.ends_with(".m3u8")) return std::make_unique<Discard>();
    auto session = pushed_session(name, req);
    if (!session) return http::Response::text(503, "origin is full\n");
    count("ingest", 200);
    return std::make_unique<CmafUpload>(std::move(session), representation_of(file),
                                        static_cast<std::size_t>(config.ingest_max_object), rendition_of(file),
                                        pushed_epoch(req));
  }

  struct Discard final : http::BodySink {
    bool on_data(ByteView) override { return true; }
    http::Response finish() override { return http::Response::text(204, ""); }
  };

  void end_representation(const std::string& name, const std::string& representation) {
    std::shared_ptr<CmafIngest> session;
    {
      std::lock_guard lock(pushed_mu);
      auto it = pushed.find(name);
      if (it == pushed.end()) return;
      session = it->second;
    }
    session->end_representation(representation);
    log::info("origin", "pushed representation stopped by its pusher",
              {{"stream", name}, {"representation", representation}});
  }

  void end_pushed(const std::string& name) {
    std::shared_ptr<CmafIngest> ended;  // destroyed outside the lock: that ends the stream
    {
      std::lock_guard lock(pushed_mu);
      auto it = pushed.find(name);
      if (it == pushed.end()) return;
      ended = std::move(it->second);
      pushed.erase(it);
    }
    log::info("origin", "pushed stream ended by its pusher", {{"stream", name}});
  }

  std::shared_ptr<CmafIngest> pushed_session(const std::string& name, const http::Request& req) {
    // pushed_mu is held across open() so two first pushes of a stream cannot both open it.
    std::lock_guard lock(pushed_mu);
    if (auto it = pushed.find(name); it != pushed.end()) return it->second;
    // The pusher's stream settings (StreamFlex-* headers), taken when the stream starts.
    std::string why;
    StreamSettings settings = pushed_settings(req, why);
    if (!why.empty()) log::warn("origin", "pushed stream settings ignored", {{"stream", name}, {"why", why}});
    // Program date time from the pushed prft boxes (the source's arrival), else this origin's own.
    auto arrival = std::make_shared<ArrivalClock>();
    settings.arrival = arrival;
    auto sink = open(name, settings);
    if (!sink) return nullptr;
    log::info("origin", "pushed stream started",
              {{"stream", name},
               {"low_latency", settings.low_latency},
               {"part_target_ms", settings.part_target.count()},
               {"segment_target_ms", settings.segment_target.count()}});
    return pushed[name] = std::make_shared<CmafIngest>(std::move(sink), 4.0, std::move(arrival));
  }

  std::shared_ptr<Stream> find(std::string_view name) {
    std::lock_guard lock(mu);
    auto it = streams.find(name);
    return it == streams.end() ? nullptr : it->second;
  }

  void count(const char* kind, int status) {
    // Family::Add locks and builds a label map; the (kind, status) pairs seen are few, so each
    // thread keeps the counters it has resolved.
    thread_local std::map<std::pair<const void*, std::pair<std::string_view, int>>, prometheus::Counter*> known;
    auto& c = known[{this, {kind, status}}];
    if (!c) c = &requests.Add({{"kind", kind}, {"code", std::to_string(status)}});
    c->Increment();
  }

  void respond(const http::Responder& res, const char* kind, http::Response r) {
    count(kind, r.status);
    // What is written, as it is written: a streamed open segment (size unknown when answered), a
    // Range slice, nothing for HEAD, a short body when the viewer left.
    r.on_sent = [c = &served_bytes](std::size_t n) { c->Increment(static_cast<double>(n)); };
    res(std::move(r));
  }

  static http::Response part_response(const Part& p, PartFiles& files) {
    http::Response r;
    r.content_type = "video/iso.segment";
    if (auto file = files.get(p)) {
      r.file = std::move(file);
      return with_cache(std::move(r), kImmutable);
    }
    r.pieces.reserve(p.chunk.payload.size() + 1);
    r.pieces.push_back(p.chunk.header);
    for (auto& b : p.chunk.payload) r.pieces.push_back(b);
    return with_cache(std::move(r), kImmutable);
  }

  static http::Response open_segment_response(const std::shared_ptr<Stream>& stream, const std::string& rendition,
                                              std::uint64_t msn) {
    http::Response r;
    r.content_type = "video/iso.segment";
    r.source = std::make_shared<OpenSegment>(stream, rendition, msn);
    // The bytes are those of the complete segment, whenever it is asked for.
    return with_cache(std::move(r), kImmutable);
  }

  static http::Response segment_response(const Segment& s) {
    http::Response r;
    r.content_type = "video/iso.segment";
    for (auto& p : s.parts) {
      r.pieces.push_back(p->chunk.header);
      for (auto& b : p->chunk.payload) r.pieces.push_back(b);
    }
    return with_cache(std::move(r), kImmutable);
  }

  // The (msn, part) a blocking request waits for is listed in `r` (LL-HLS 6.2.5.2); a part index
  // past the last part of a complete segment means part 0 of the next one.
  static bool listed(const RenditionView& r, std::uint64_t msn, std::optional<std::uint64_t> part) {
    auto edge = r.last_part();
    if (!edge) return false;
    if (!part) {
      if (const Segment* s = r.find(msn)) return s->complete;
      return edge->first > msn;
    }
    if (edge->first > msn + 1) return true;
    if (const Segment* s = r.find(msn)) {
      if (*part < s->parts.size()) return true;
      if (!s->complete) return false;
      const Segment* next = r.find(msn + 1);
      return next && !next->parts.empty();
    }
    return edge->first > msn;
  }

  void serve_live(const http::Request& req, http::Responder res) {
    int td = target_duration();
    // /live/<stream>/<file> or /live/<stream>/<rendition>/<file>
    std::string_view path(req.path);
    path.remove_prefix(6);
    std::vector<std::string_view> parts;
    while (!path.empty() && parts.size() < 4) {
      auto slash = path.find('/');
      parts.push_back(path.substr(0, slash));
      if (slash == std::string_view::npos) break;
      path.remove_prefix(slash + 1);
    }
    for (auto p : parts)
      if (p.empty() || p == "." || p == "..") return respond(res, "bad", not_found(td));
    if (parts.size() < 2 || parts.size() > 3) return respond(res, "bad", not_found(td));
    // Checked before the stream is looked up: without a token, a protected name reveals nothing.
    Viewer viewer;
    if (access.protected_streams && access.protected_streams->contains(parts[0])) {
      viewer.protect = true;
      viewer.token = req.param(auth::kTokenParam);
      auto edge_token = viewer.token.empty() ? req.header(auth::kTokenHeader) : std::string();
      auto decision = access.tokens
                          ? access.tokens->check(viewer.token.empty() ? edge_token : viewer.token, parts[0], req.remote)
                          : auth::AccessDecision{403, "no token keys"};
      if (decision.status) {
        auto refusal = http::Response::text(decision.status, fmt::format("{}\n", decision.message));
        refusal.headers.emplace_back("Cache-Control", "no-store");
        return respond(res, "denied", for_viewer(std::move(refusal), viewer));
      }
    }
    auto stream = find(parts[0]);
    auto view = stream ? stream->view() : nullptr;
    if (!view) return respond(res, "bad", not_found(td));

    if (parts.size() == 2) {
      if (parts[1] == "master.m3u8") {
        http::Response r;
        r.content_type = "application/vnd.apple.mpegurl";
        r.pieces.push_back(view->multivariant);
        return respond(res, "multivariant", for_viewer(with_cache(std::move(r), "max-age=1"), viewer, Manifest::hls));
      }
      if (parts[1] == "manifest.mpd") {
        http::Response r;
        r.content_type = "application/dash+xml";
        r.pieces.push_back(view->mpd);
        return respond(res, "mpd", for_viewer(with_cache(std::move(r), "max-age=1"), viewer, Manifest::dash));
      }
      return respond(res, "bad", not_found(td));
    }

    std::string rendition(parts[1]);
    const RenditionView* r = view->rendition(rendition);
    if (!r) return respond(res, "bad", not_found(td));
    auto object = parse_object(parts[2]);
    switch (object.kind) {
      case ObjectName::init: {
        auto it = r->inits->find(static_cast<std::uint32_t>(object.msn));
        if (it == r->inits->end()) return respond(res, "init", not_found(td));
        http::Response out;
        out.content_type = r->track.type == media::MediaType::video ? "video/mp4" : "audio/mp4";
        out.pieces.push_back(it->second);
        return respond(res, "init", for_viewer(with_cache(std::move(out), kImmutable), viewer));
      }
      case ObjectName::playlist:
        return serve_playlist(req, std::move(res), *stream, *view, rendition, *r, std::move(viewer));
      case ObjectName::part_object:
      case ObjectName::segment:
        return serve_media(std::move(res), stream, *view, rendition, *r, object, std::move(viewer));
      default:
        return respond(res, "bad", not_found(td));
    }
  }

  void serve_playlist(const http::Request& req, http::Responder res, Stream& stream, const StreamView& view,
                      const std::string& rendition, const RenditionView& r, Viewer viewer) {
    int td = view.target_duration;
    bool skip = req.param("_HLS_skip") == "YES" || req.param("_HLS_skip") == "v2";
    auto playlist = [skip, td, viewer](const RenditionView& rv, bool blocking, bool live) {
      http::Response out;
      out.content_type = "application/vnd.apple.mpegurl";
      out.pieces.push_back(skip ? rv.playlist_skip : rv.playlist);
      if (!live) out.headers.emplace_back(std::string(hls::kSourceHeader), std::string(hls::kSourceAway));
      // Appendix B.1 lifetimes: blocking answers 6 TD; plain reloads half a TD.
      return for_viewer(with_cache(std::move(out), blocking ? fmt::format("max-age={}", 6 * td)
                                                            : fmt::format("max-age={}", std::max(1, td / 2))),
                        viewer, Manifest::hls);
    };
    bool has_msn = req.has_param("_HLS_msn"), has_part = req.has_param("_HLS_part");
    if (has_part && !has_msn)
      return respond(
          res, "playlist",
          with_cache(http::Response::text(400, "_HLS_part needs _HLS_msn\n"), fmt::format("max-age={}", 4 * td)));
    // Standard HLS offers no blocking reloads (no CAN-BLOCK-RELOAD): directives are ignored.
    // A plain reload of a stream that stopped flowing here is marked away too: a player that does
    // not block (standard HLS) would otherwise be held on this origin's last parts.
    if (!has_msn || !view.live || !view.low_latency)
      return respond(res, "playlist", playlist(r, false, view.flowing(std::chrono::steady_clock::now())));
    std::uint64_t msn = 0, part_n = 0;
    if (!parse_u64(req.param("_HLS_msn"), msn) || (has_part && !parse_u64(req.param("_HLS_part"), part_n)))
      return respond(
          res, "playlist",
          with_cache(http::Response::text(400, "bad _HLS_msn or _HLS_part\n"), fmt::format("max-age={}", 4 * td)));
    std::optional<std::uint64_t> part;
    if (has_part) part = part_n;
    auto edge = r.last_part();
    std::uint64_t last_msn = edge ? edge->first : 0;
    // Too far ahead: more than two segments, or more parts than the Advance Part Limit (3/PT).
    double pt = view.configured_part_target;
    std::uint64_t advance_parts = pt < 1.0 ? static_cast<std::uint64_t>(3.0 / pt) : 3;
    std::uint64_t parts_per_segment =
        std::max<std::uint64_t>(1, static_cast<std::uint64_t>(view.segment_target / std::max(pt, 0.001)));
    bool too_far = msn > last_msn + 2;
    if (!too_far && part && edge) {
      std::uint64_t want = msn * parts_per_segment + *part;
      std::uint64_t have = edge->first * parts_per_segment + edge->second;
      too_far = want > have + advance_parts;
    }
    if (too_far)
      return respond(res, "playlist",
                     with_cache(http::Response::text(400, "request too far ahead of the live edge\n"),
                                fmt::format("max-age={}", 4 * td)));
    held.Increment();
    auto answered = std::make_shared<std::atomic<bool>>(false);
    stream.wait({[msn, part, rendition](const StreamView& v) {
                   auto* rv = v.rendition(rendition);
                   return rv && (listed(*rv, msn, part) || !v.live);
                 },
                 [this, res, rendition, playlist, td](const StreamView& v) {
                   held.Decrement();
                   auto* rv = v.rendition(rendition);
                   respond(res, "playlist", rv ? playlist(*rv, true, v.live) : not_found(td));
                 },
                 [res, this, answered] {
                   if (res.answered() && !answered->exchange(true)) {
                     held.Decrement();
                     return true;
                   }
                   return res.answered();
                 }});
  }

  void serve_media(http::Responder res, const std::shared_ptr<Stream>& stream, const StreamView& view,
                   const std::string& rendition, const RenditionView& r, ObjectName object, Viewer viewer) {
    int td = view.target_duration;
    const char* kind = object.kind == ObjectName::part_object ? "part" : "segment";
    // Captures by value: a copy of it answers held requests after this function returned.
    auto found = [object, protect = viewer.protect, files = part_files, stream, rendition](
                     const StreamView& v, const RenditionView& rv) -> std::optional<http::Response> {
      const Segment* s = rv.find(object.msn);
      if (!s) return std::nullopt;
      if (object.kind == ObjectName::segment) {
        if (s->complete) return for_viewer(segment_response(*s), {protect, {}});
        // Low latency: the open segment goes out while it is made, chunk by chunk (DASH-IF
        // low-latency mode; the MPD's availabilityTimeOffset invites the request after its first
        // chunk). Standard latency waits for the whole segment.
        if (v.low_latency && v.live && !s->parts.empty())
          return for_viewer(open_segment_response(stream, rendition, object.msn), {protect, {}});
        return std::nullopt;
      }
      if (object.part < s->parts.size())
        return for_viewer(part_response(*s->parts[object.part], *files), {protect, {}});
      return std::nullopt;
    };
    if (auto out = found(view, r)) return respond(res, kind, std::move(*out));
    // Not there yet: hold it if it is the next part, the open segment (standard latency) or the
    // next segment (a preload hint, or a low-latency DASH client asking before its first chunk);
    // anything else is gone or never existed.
    auto edge = r.last_part();
    bool upcoming = false;
    if (edge && view.live) {
      const Segment* last = r.find(edge->first);
      if (object.kind == ObjectName::segment) {
        upcoming = object.msn == edge->first && last && !last->complete;
        upcoming = upcoming || object.msn == edge->first + 1;
      } else {
        upcoming = (object.msn == edge->first && object.part == edge->second + 1) ||
                   (object.msn == edge->first + 1 && object.part == 0);
      }
    }
    if (!upcoming) return respond(res, kind, not_found(td));
    held.Increment();
    auto answered = std::make_shared<std::atomic<bool>>(false);
    stream->wait({[object, rendition](const StreamView& v) {
                    auto* rv = v.rendition(rendition);
                    if (!rv || !v.live) return true;
                    const Segment* s = rv->find(object.msn);
                    if (!s) return rv->last_part() && rv->last_part()->first > object.msn + 1;
                    if (object.kind == ObjectName::segment) return s->complete || (v.low_latency && !s->parts.empty());
                    return object.part < s->parts.size() || s->complete;
                  },
                  [this, res, rendition, found, kind, td](const StreamView& v) {
                    held.Decrement();
                    auto* rv = v.rendition(rendition);
                    std::optional<http::Response> out = rv ? found(v, *rv) : std::nullopt;
                    respond(res, kind, out ? std::move(*out) : not_found(td));
                  },
                  [res, this, answered] {
                    if (res.answered() && !answered->exchange(true)) {
                      held.Decrement();
                      return true;
                    }
                    return res.answered();
                  }});
  }

  void schedule_reaper() {
    reaper.expires_after(std::chrono::seconds(5));
    reaper.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->reap();
      self->schedule_reaper();
    });
  }

  void reap() {
    std::vector<std::shared_ptr<CmafIngest>> ended;  // destroyed outside the lock: that ends their streams
    {
      std::lock_guard lock(pushed_mu);
      auto idle_since = std::chrono::steady_clock::now() - config.ingest_idle;
      std::erase_if(pushed, [&](auto& kv) {
        if (kv.second->last_push() > idle_since) return false;
        log::info("origin", "pushed stream ended: no object within origin.ingest_idle", {{"stream", kv.first}});
        ended.push_back(kv.second);
        return true;
      });
    }
    ended.clear();
    auto now = wall_ms();
    std::lock_guard lock(mu);
    std::erase_if(streams, [&](auto& kv) {
      auto& s = kv.second;
      bool expired = !s->live && s->stopped_at_ms > 0 && now - s->stopped_at_ms > config.unpublish_grace.count();
      if (expired) log::info("origin", "stream removed", {{"stream", kv.first}});
      return expired;
    });
  }

  net::IoPool& pool;
  Config config;
  ViewerAccess access;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Counter& parts_published;
  prometheus::Counter& served_bytes;
  prometheus::Gauge& held;
  boost::asio::steady_timer reaper;
  std::unique_ptr<http::Server> server;
  std::map<std::string, std::pair<std::string, Bytes>> web_files;
  std::shared_ptr<PartFiles> part_files = std::make_shared<PartFiles>(PartFiles::default_dir());
  std::mutex mu;  // guards `streams`: taken on open and on each request's lookup, never per frame
  std::map<std::string, std::shared_ptr<Stream>, std::less<>> streams;
  std::mutex pushed_mu;  // guards `pushed`; taken per pushed object (a few per second per stream)
  std::map<std::string, std::shared_ptr<CmafIngest>, std::less<>> pushed;
  std::unique_ptr<StreamSink> open(std::string_view name, const StreamSettings& settings = {});
};

namespace {

class Sink final : public StreamSink {
 public:
  Sink(std::shared_ptr<Stream> s, const Config& config, std::shared_ptr<const ArrivalClock> arrival,
       prometheus::Counter& parts)
      : stream_(std::move(s)), parts_(parts) {
    std::lock_guard lock(stream_->input_mu);
    stream_->packager().restart(std::move(arrival));
    stream_->packager().reconfigure(config);
    stream_->live = true;
    stream_->stopped_at_ms = 0;
  }
  ~Sink() override {
    std::lock_guard lock(stream_->input_mu);
    stream_->publish(stream_->packager().on_stop());
    stream_->live = false;
    stream_->stopped_at_ms = wall_ms();
  }
  void on_track(const media::TrackConfig& track) override {
    std::lock_guard lock(stream_->input_mu);
    stream_->packager().on_track(track);
  }
  void on_frame(const media::MediaFrame& frame) override {
    std::lock_guard lock(stream_->input_mu);
    if (auto view = stream_->packager().on_frame(frame)) {
      parts_.Increment();
      stream_->publish(std::move(view));
    }
  }

 private:
  std::shared_ptr<Stream> stream_;
  prometheus::Counter& parts_;
};

}  // namespace

Origin::Origin(net::IoPool& pool, Config config, Metrics& metrics)
    : impl_(std::make_shared<Impl>(pool, std::move(config), metrics)) {}

Origin::~Origin() = default;

std::unique_ptr<StreamSink> Origin::Impl::open(std::string_view name, const StreamSettings& settings) {
  Config stream_config = config;
  stream_config.low_latency = settings.low_latency;
  if (settings.part_target.count() > 0) stream_config.part_target = settings.part_target;
  if (settings.segment_target.count() > 0) stream_config.segment_target = settings.segment_target;
  stream_config.segment_target = std::max(stream_config.segment_target, stream_config.part_target);
  std::shared_ptr<Stream> stream;
  {
    std::lock_guard lock(mu);
    auto it = streams.find(name);
    if (it == streams.end()) {
      if (streams.size() >= static_cast<std::size_t>(config.max_streams)) return nullptr;
      it = streams.emplace(std::string(name), std::make_shared<Stream>(std::string(name), stream_config)).first;
    }
    stream = it->second;
  }
  return std::make_unique<Sink>(std::move(stream), stream_config, settings.arrival, parts_published);
}

std::unique_ptr<StreamSink> Origin::open_stream(std::string_view name, const StreamSettings& settings) {
  return impl_->open(name, settings);
}

void Origin::set_viewer_access(ViewerAccess access) {
  impl_->access = std::move(access);
}

void Origin::start() {
  impl_->server->start();
  impl_->schedule_reaper();
  log::info("origin", "HTTP listening", {{"listen", impl_->config.listen}, {"port", port()}});
}

void Origin::stop() {
  impl_->server->stop();
  boost::asio::post(impl_->reaper.get_executor(), [impl = impl_] { impl->reaper.cancel(); });
}

std::uint16_t Origin::port() const {
  return impl_->server->port();
}

}  // namespace sf::origin
