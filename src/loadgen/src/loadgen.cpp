#include "sf/loadgen/loadgen.h"

#include <sys/resource.h>
#include <sys/time.h>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>

#include "abr.h"
#include "histogram.h"
#include "playback.h"
#include "playlist.h"
#include "sf/core/log.h"
#include "sf/http/client.h"

namespace sf::loadgen {

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kMaxConsecutiveErrors = 5;  // then the viewer gives up (counted as failed)

// Written by its worker thread only, read by the main thread for progress lines: a relaxed
// load-and-store is enough (no read-modify-write between threads).
class Counter {
 public:
  void add(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

struct WorkerStats {
  Histogram startup, live_edge, part_delivery, part_age, part_since_origin;
  std::uint64_t parts_unreferenced = 0;  // --reference: downloaded parts the reference never saw listed
  Counter requests, bytes, started, failed, errors;
  std::uint64_t playlists = 0, parts = 0, segments = 0, inits = 0, delta_playlists = 0;
  std::uint64_t ok = 0, stalls = 0, stalled_viewers = 0;
  double stall_seconds = 0;
  std::map<std::string, std::uint64_t> errors_by_kind;
  std::uint64_t abr_up = 0, abr_down = 0;
  std::map<std::uint64_t, std::uint64_t> media_by_bandwidth;
};

// The last few versions of each media playlist this worker fetched, parsed. Viewers of one stream
// mostly receive byte-identical playlists (blocking reloads answer everyone with one snapshot), so
// a memcmp replaces a parse and all of them share one parsed copy.
class PlaylistCache {
 public:
  std::shared_ptr<const MediaPlaylist> get(const std::string& key, Bytes body) {
    auto& e = entries_[key];
    for (auto& r : e.recent)
      if (r && r->text.size() == body.size() && std::memcmp(r->text.data(), body.data(), body.size()) == 0) return r;
    auto parsed = parse_media_playlist(std::move(body));
    if (!parsed) return nullptr;
    auto p = std::make_shared<const MediaPlaylist>(std::move(*parsed));
    e.recent[e.next++ % e.recent.size()] = p;
    return p;
  }

 private:
  struct Entry {
    std::array<std::shared_ptr<const MediaPlaylist>, 4> recent;
    std::size_t next = 0;
  };
  std::unordered_map<std::string, Entry> entries_;
};

struct Worker {
  // `single_threaded`: only this worker's thread touches the context (viewers are spawned before
  // it runs, no resolver thread posts to it), so Asio may skip its locks.
  explicit Worker(bool single_threaded)
      : ctx(single_threaded ? BOOST_ASIO_CONCURRENCY_HINT_UNSAFE : BOOST_ASIO_CONCURRENCY_HINT_1) {}
  asio::io_context ctx;
  WorkerStats stats;
  PlaylistCache cache;

  // --reference: when this worker's reference player first saw each part listed at the origin
  // (NaN: already listed when it started), by part_key(); the oldest go past kMaxAnnounced.
  static constexpr std::size_t kMaxAnnounced = 4096;
  WorkerStats reference_stats;  // the reference player's own requests, kept out of the viewers'
  std::unordered_map<std::string, double> announced;
  std::deque<std::string> announced_order;
  void announce(std::string key, double at) {
    auto [it, fresh] = announced.emplace(std::move(key), at);
    if (!fresh) return;  // the first sighting counts
    announced_order.push_back(it->first);
    if (announced_order.size() > kMaxAnnounced) {
      announced.erase(announced_order.front());
      announced_order.pop_front();
    }
  }
};

// A part of a media playlist, named the same whichever server lists it: the playlist's path (no
// host, no query) and the part's numbers.
std::string part_key(std::string_view playlist, std::uint64_t msn, std::uint32_t index) {
  return fmt::format("{}#{}.{}", playlist.substr(0, playlist.find('?')), msn, index);
}

// Read-only while the run lasts.
struct Plan {
  Options opt;
  HttpUrl url;
  http::ClientLimits limits;
  Clock::time_point t0;
  Clock::time_point deadline;
  std::optional<BandwidthPlan> bandwidth;  // abr: the simulated links
  double seconds(Clock::time_point t) const { return std::chrono::duration<double>(t - t0).count(); }
  double now() const { return seconds(Clock::now()); }
};

double cpu_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string error_kind(const std::error_code& ec) {
  if (ec.category() != error_category()) return ec.message();
  switch (static_cast<errc>(ec.value())) {
    case errc::timeout:
      return "timeout";
    case errc::closed:
      return "closed";
    case errc::io_error:
      return "io_error";
    case errc::malformed:
      return "malformed";
    case errc::message_too_large:
      return "too_large";
    case errc::limit_exceeded:
      return "limit_exceeded";
    default:
      return ec.message();
  }
}

// One simulated player. Shared by its track coroutines (video, audio) on one worker thread; the
// last one to finish destroys it, which books the viewer's totals.
struct Viewer {
  Viewer(Worker& w, const Plan& p, double start) : Viewer(w, w.stats, p, start) {}
  Viewer(Worker& w, WorkerStats& books, const Plan& p, double start)
      : worker(w), stats(books), plan(p), start(start), playback(1, 0) {}
  ~Viewer() {
    auto& st = stats;
    double end = std::min(plan.now(), plan.seconds(plan.deadline));
    playback.advance(end);
    if (playback.stalls() > 0) ++st.stalled_viewers;
    st.stalls += static_cast<std::uint64_t>(playback.stalls());
    st.stall_seconds += playback.stall_seconds(end);
    if (playback.started() && !gave_up)
      ++st.ok;
    else
      st.failed.add();
    if (abr) {
      st.abr_up += abr->ups();
      st.abr_down += abr->downs();
    }
  }

  bool over() const { return gave_up || Clock::now() >= plan.deadline; }

  void error(const std::string& kind) {
    ++stats.errors_by_kind[kind];
    stats.errors.add();
    if (++consecutive_errors >= kMaxConsecutiveErrors) gave_up = true;
  }

  // Media of `track` arrived, ending at `end_pdt`.
  void on_media(std::size_t track, double end_pdt) {
    double now = plan.now();
    playback.on_media(track, end_pdt, now);
    if (!counted_start && playback.started()) {
      counted_start = true;
      stats.started.add();
      stats.startup.add_seconds(playback.started_at() - start);
    }
    // Distance behind the live edge, as the viewer sees it: the wall clock now minus the
    // PROGRAM-DATE-TIME of the media being shown (the playback position). PDT is the server's
    // wall clock when the media was packaged, so on one host (or NTP-synced hosts) this is
    // end-to-end latency from the origin to the screen: hold-back + delivery + stalls.
    if (track == 0 && playback.playing()) stats.live_edge.add_seconds(wall_now() - playback.position());
  }

  Worker& worker;
  WorkerStats& stats;  // where its requests and experience are booked
  const Plan& plan;
  double start;  // when this viewer began (seconds since t0)
  Playback playback;
  std::optional<std::string> audio_target;
  std::optional<Abr> abr;                    // with --abr
  std::vector<std::string> variant_targets;  // abr: media playlist of each variant, as listed
  std::vector<std::uint64_t> variant_bandwidths;
  int consecutive_errors = 0;
  bool gave_up = false;
  bool counted_start = false;
};

struct Fetched {
  bool ok = false;
  int status = 0;
  Bytes body;
  std::uint64_t bytes = 0;  // body bytes received
  double seconds = 0;       // request sent -> last byte
};

// GET `target`, booked in the stats; non-2xx answers and transport failures are errors of the
// viewer, except a request cut by the end of the run.
// Media bodies are counted, not kept (`keep_body` false): a load generator needs their bytes to
// arrive, not their contents.
asio::awaitable<Fetched> fetch(Viewer& v, http::Connection& conn, std::string target, bool keep_body = true) {
  Fetched out;
  auto left = std::chrono::ceil<milliseconds>(v.plan.deadline - Clock::now());
  if (left.count() <= 0 || v.gave_up) co_return out;
  conn.discard_bodies(!keep_body);
  conn.keep_headers(false);  // a simulated player reads no response header
  std::vector<std::pair<std::string, std::string>> no_headers;
  auto sent = Clock::now();
  auto op = conn.request("GET", std::move(target), std::move(no_headers), std::min(v.plan.opt.timeout, left));
  auto r = co_await std::move(op);
  out.seconds = std::chrono::duration<double>(Clock::now() - sent).count();
  auto& st = v.stats;
  st.requests.add();
  if (!r) {
    if (Clock::now() + milliseconds(2) < v.plan.deadline) v.error(error_kind(r.error()));
    co_return out;
  }
  st.bytes.add(r->body_bytes);
  out.bytes = r->body_bytes;
  out.status = r->status;
  if (r->status < 200 || r->status > 299) {
    v.error("http_" + std::to_string(r->status));
    co_return out;
  }
  v.consecutive_errors = 0;
  out.ok = true;
  out.body = std::move(r->body);
  co_return out;
}

// Waits `d` (bounded by the end of the run); false if the run is over.
asio::awaitable<bool> pause(Viewer& v, Clock::duration d) {
  auto until = std::min(Clock::now() + d, v.plan.deadline);
  asio::steady_timer timer(co_await asio::this_coro::executor, until);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return !v.over();
}

asio::awaitable<bool> backoff(Viewer& v) {
  co_return co_await pause(v, milliseconds(250 * v.consecutive_errors));
}

// abr: a media download `f` of the video track arrived. It is made to last as long as the viewer's
// simulated link needs (the player waits out the difference), measured, and the rendition
// decided; returns the media playlist to move to, or "" to stay.
asio::awaitable<std::string> abr_after_download(Viewer& v, const Fetched& f) {
  if (!v.abr) co_return std::string();
  auto& abr = *v.abr;
  ++v.stats.media_by_bandwidth[v.variant_bandwidths[abr.current()]];
  double link = abr.link_seconds(f.bytes, f.seconds);
  if (link > f.seconds &&
      !co_await pause(v, std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(link - f.seconds))))
    co_return std::string();
  abr.on_download(f.bytes, link);
  auto next = abr.decide();
  if (!next) co_return std::string();
  abr.switched();
  co_return v.variant_targets[*next];
}

asio::awaitable<std::shared_ptr<const MediaPlaylist>> get_playlist(Viewer& v, http::Connection& conn,
                                                                   std::string target, const std::string& key) {
  auto f = co_await fetch(v, conn, std::move(target));
  if (!f.ok) co_return nullptr;
  auto pl = v.worker.cache.get(key, std::move(f.body));
  if (!pl) {
    v.error("bad_playlist");
    co_return nullptr;
  }
  ++v.stats.playlists;
  if (pl->skipped_segments > 0) ++v.stats.delta_playlists;
  co_return pl;
}

// The request target of a URI listed in `playlist`: the common case (a plain relative name such as
// "s12.p3.m4s") is the playlist's directory plus the name; anything else goes through resolve_uri.
Result<std::string> target_of(const std::string& playlist, std::string_view uri, const net::Endpoint& server) {
  bool plain = !uri.empty() && uri.front() != '/' && uri.front() != '.' && uri.find(':') == std::string_view::npos &&
               uri.find("/.") == std::string_view::npos;
  if (!plain) return resolve_uri(playlist, uri, server);
  auto dir = std::string_view(playlist).substr(0, playlist.find('?'));
  dir = dir.substr(0, dir.rfind('/') + 1);
  std::string out;
  out.reserve(dir.size() + uri.size());
  out.append(dir).append(uri);
  return out;
}

// Fetches the init section `map` (relative to `playlist`) if it is not the one loaded already.
asio::awaitable<bool> ensure_init(Viewer& v, http::Connection& conn, const std::string& playlist, std::string_view map,
                                  std::string& loaded) {
  if (map.empty() || map == loaded) co_return true;
  auto target = target_of(playlist, map, v.plan.url.endpoint);
  if (!target) {
    v.error("bad_uri");
    co_return false;
  }
  auto f = co_await fetch(v, conn, std::move(*target), false);
  if (!f.ok) co_return false;
  ++v.stats.inits;
  loaded = map;
  co_return true;
}

void spawn_track(std::shared_ptr<Viewer> v, std::string target, std::size_t track);

// Follows an LL-HLS media playlist with blocking reloads, downloading each new part.
asio::awaitable<void> ll_track(std::shared_ptr<Viewer> v, std::unique_ptr<http::Connection> conn, std::string playlist,
                               std::size_t track) {
  std::shared_ptr<const MediaPlaylist> pl;
  std::optional<std::size_t> start;
  while (!start) {
    if (v->over()) co_return;
    pl = co_await get_playlist(*v, *conn, playlist, playlist);
    if (pl && pl->parts.empty()) v->error("no_parts");
    if (pl && !pl->parts.empty()) start = track == 0 ? ll_start_part(*pl) : part_at(*pl, v->playback.position());
    if (start && std::isnan(pl->parts[*start].pdt)) {
      v->error("no_program_date_time");
      start.reset();
    }
    if (!start && !co_await backoff(*v)) co_return;
  }
  if (track == 0) {
    double hold = pl->part_hold_back > 0 ? pl->part_hold_back : 3 * pl->part_target;
    double part_target = pl->part_target > 0 ? pl->part_target : pl->parts[*start].duration;
    // Downloads begin at the independent part; playback begins PART-HOLD-BACK behind the edge
    // (a player decodes from the independent frame but shows from the hold-back position).
    const Part& newest = pl->parts.back();
    double edge =
        std::isnan(newest.pdt) ? pl->parts[*start].pdt + pl->media_after(*start) : newest.pdt + newest.duration;
    double from = std::max(pl->parts[*start].pdt, edge - hold);
    v->playback = Playback(v->audio_target ? 2 : 1, part_target);
    v->playback.set_start(from, edge - from);
    if (v->audio_target) spawn_track(v, *v->audio_target, 1);
  }

  auto& st = v->stats;
  std::string init;
  std::uint64_t last_msn = 0;
  std::uint32_t last_index = 0;
  bool have_last = false;
  double answered_at = NAN;  // when the blocking reload that listed the new parts was answered
  std::string switch_to;     // abr: the media playlist to move to
  std::size_t next = *start;
  while (!v->over()) {
    if (have_last && next < pl->parts.size() && !follows(*pl, next, last_msn, last_index)) v->error("gap");
    for (std::size_t i = next; i < pl->parts.size() && !v->over(); ++i) {
      const Part& p = pl->parts[i];
      last_msn = p.msn;
      last_index = p.index;
      have_last = true;  // a part that failed is skipped, not retried: the player moves on
      if (!co_await ensure_init(*v, *conn, playlist, p.map_uri, init)) continue;
      auto target = target_of(playlist, p.uri, v->plan.url.endpoint);
      if (!target) {
        v->error("bad_uri");
        continue;
      }
      auto f = co_await fetch(*v, *conn, std::move(*target), false);
      if (!f.ok) continue;
      if (track == 0 && v->abr) switch_to = co_await abr_after_download(*v, f);
      ++st.parts;
      if (track == 0) {
        if (!std::isnan(answered_at)) {  // parts announced by a blocking reload, not the catch-up at start
          double now = v->plan.now();
          st.part_delivery.add_seconds(now - answered_at);
          st.part_age.add_seconds(wall_now() - p.pdt);
          if (!v->worker.announced.empty()) {
            auto it = v->worker.announced.find(part_key(playlist, p.msn, p.index));
            if (it == v->worker.announced.end())
              ++st.parts_unreferenced;
            else if (!std::isnan(it->second) && it->second >= v->start)           // listed before the viewer
              st.part_since_origin.add_seconds(std::max(0.0, now - it->second));  // began: not late to it
          }
        }
      }
      v->on_media(track, p.pdt + p.duration);
      if (!switch_to.empty()) break;
    }
    if (!switch_to.empty()) {
      // Another rendition from the next part on: its playlist now (not a blocking reload), its
      // init section, the part after the last one played (renditions share part numbers).
      playlist = std::move(switch_to);
      switch_to.clear();
      init.clear();
      answered_at = NAN;
      auto other = co_await get_playlist(*v, *conn, playlist, playlist);
      if (!other) {
        if (!co_await backoff(*v)) break;
        next = pl->parts.size();  // the blocking reload below asks the new playlist
        continue;
      }
      pl = std::move(other);
      next = parts_after(*pl, last_msn, last_index);
      continue;
    }
    next = pl->parts.size();
    if (pl->endlist || v->over()) break;

    // SPECS §1.2: ask for the part after the last one listed; the server holds the answer until
    // it is published (and rolls an index past the segment's last part to the next segment).
    auto directive =
        playlist + (playlist.find('?') == std::string::npos ? "?" : "&") + blocking_query(last_msn, last_index);
    // Delta updates (§4.4.5.2): the server leaves out segments older than CAN-SKIP-UNTIL; the
    // parts a player follows are always within that, so the answer lists everything it needs.
    if (v->plan.opt.skip && pl->can_skip_until > 0) directive += "&_HLS_skip=YES";
    auto answer = co_await get_playlist(*v, *conn, std::move(directive), playlist);
    if (!answer) {
      if (!co_await backoff(*v)) break;
      continue;
    }
    answered_at = v->plan.now();
    pl = std::move(answer);
    next = parts_after(*pl, last_msn, last_index);
    // Answered without anything new (a stream that stopped growing): don't spin.
    if (next == pl->parts.size() && !pl->endlist &&
        !co_await pause(*v, std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(std::max(0.1, pl->part_target)))))
      break;
  }
}

// Follows a media playlist the RFC 8216 way: reload every target duration / 2, download each new
// complete segment.
asio::awaitable<void> poll_track(std::shared_ptr<Viewer> v, std::unique_ptr<http::Connection> conn,
                                 std::string playlist, std::size_t track) {
  std::shared_ptr<const MediaPlaylist> pl;
  std::optional<std::size_t> start;
  while (!start) {
    if (v->over()) co_return;
    pl = co_await get_playlist(*v, *conn, playlist, playlist);
    if (pl && pl->segments.empty()) v->error("no_segments");
    if (pl && !pl->segments.empty())
      start = track == 0 ? poll_start_segment(*pl, 3) : segment_at(*pl, v->playback.position());
    if (start && std::isnan(pl->segments[*start].pdt)) {
      v->error("no_program_date_time");
      start.reset();
    }
    if (!start && !co_await backoff(*v)) co_return;
  }
  if (track == 0) {
    double buffered = 0;  // the player starts once it holds the segments it started with (3)
    for (std::size_t i = *start; i < pl->segments.size(); ++i) buffered += pl->segments[i].duration;
    v->playback = Playback(v->audio_target ? 2 : 1, pl->target_duration);
    v->playback.set_start(pl->segments[*start].pdt, buffered);
    if (v->audio_target) spawn_track(v, *v->audio_target, 1);
  }

  auto& st = v->stats;
  auto reload_every = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.1, pl->target_duration / 2)));
  auto reloaded = Clock::now();
  std::string init;
  std::string switch_to;  // abr: the media playlist to move to
  std::uint64_t last_msn = 0;
  std::size_t next = *start;
  while (!v->over()) {
    for (std::size_t i = next; i < pl->segments.size() && !v->over(); ++i) {
      const Segment& s = pl->segments[i];
      last_msn = s.msn;
      if (!co_await ensure_init(*v, *conn, playlist, s.map_uri, init)) continue;
      auto target = target_of(playlist, s.uri, v->plan.url.endpoint);
      if (!target) {
        v->error("bad_uri");
        continue;
      }
      auto f = co_await fetch(*v, *conn, std::move(*target), false);
      if (!f.ok) continue;
      if (track == 0 && v->abr) switch_to = co_await abr_after_download(*v, f);
      ++st.segments;
      v->on_media(track, s.pdt + s.duration);
      if (!switch_to.empty()) break;
    }
    if (!switch_to.empty()) {
      playlist = std::move(switch_to);
      switch_to.clear();
      init.clear();
      auto other = co_await get_playlist(*v, *conn, playlist, playlist);
      if (!other) {
        if (!co_await backoff(*v)) break;
        next = pl->segments.size();
        continue;
      }
      pl = std::move(other);
      next = segments_after(*pl, last_msn);
      continue;
    }
    next = pl->segments.size();
    if (pl->endlist || v->over()) break;
    if (!co_await pause(*v, reloaded + reload_every - Clock::now())) break;
    reloaded = Clock::now();
    auto answer = co_await get_playlist(*v, *conn, playlist, playlist);
    if (!answer) {
      if (!co_await backoff(*v)) break;
      continue;
    }
    pl = std::move(answer);
    next = segments_after(*pl, last_msn);
  }
}

// The reference player (--reference): one per worker, following the stream's first video variant
// on the origin itself with blocking reloads, noting when each part was first listed there. A
// viewer's part delivery since the origin is measured from that moment: what a viewer waits for
// whatever the proxy in between does. (part_delivery starts at the proxy's own answer to the
// viewer's blocking reload, so a proxy that answers those late looks better on it, not on this.)
asio::awaitable<void> reference_player(std::shared_ptr<Viewer> v) {
  auto& w = v->worker;
  auto conn = std::make_unique<http::Connection>(w.ctx.get_executor(), v->plan.url.endpoint, v->plan.limits);
  const auto retry = milliseconds(250);
  std::string playlist;
  while (playlist.empty()) {
    if (v->over()) co_return;
    auto f = co_await fetch(*v, *conn, v->plan.url.target);
    if (f.ok) {
      auto m = parse_multivariant(f.body);
      const Variant* variant = m ? first_video_variant(*m) : nullptr;
      if (variant) {
        if (auto t = resolve_uri(v->plan.url.target, variant->uri, v->plan.url.endpoint)) playlist = std::move(*t);
      } else if (m && as_chars(f.body.view()).find("#EXT-X-TARGETDURATION") != std::string_view::npos) {
        playlist = v->plan.url.target;
      }
    }
    if (playlist.empty() && !co_await pause(*v, retry)) co_return;
  }
  std::shared_ptr<const MediaPlaylist> pl;
  while (!v->over()) {
    std::string target = playlist;
    if (pl && !pl->parts.empty())
      target += (playlist.find('?') == std::string::npos ? "?" : "&") +
                blocking_query(pl->parts.back().msn, pl->parts.back().index);
    auto answer = co_await get_playlist(*v, *conn, std::move(target), "reference " + playlist);
    if (!answer) {
      if (!co_await pause(*v, retry)) break;
      continue;
    }
    double at = pl ? v->plan.now() : NAN;  // what the first answer lists was there before the reference
    for (const Part& p : answer->parts) w.announce(part_key(playlist, p.msn, p.index), at);
    bool grew =
        !pl || (!answer->parts.empty() && (pl->parts.empty() || answer->parts.back().msn != pl->parts.back().msn ||
                                           answer->parts.back().index != pl->parts.back().index));
    pl = std::move(answer);
    if (pl->endlist) break;
    if (!grew && !co_await pause(*v, std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(std::max(0.1, pl->part_target)))))
      break;
  }
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("loadgen", "viewer coroutine failed", {{"error", ex.what()}});
  }
}

void spawn_track(std::shared_ptr<Viewer> v, std::string target, std::size_t track) {
  auto& ctx = v->worker.ctx;
  auto conn = std::make_unique<http::Connection>(ctx.get_executor(), v->plan.url.endpoint, v->plan.limits);
  if (v->plan.opt.mode == Mode::ll)
    asio::co_spawn(ctx, ll_track(std::move(v), std::move(conn), std::move(target), track), log_exception);
  else
    asio::co_spawn(ctx, poll_track(std::move(v), std::move(conn), std::move(target), track), log_exception);
}

// A viewer's life: wait for its turn in the ramp, read the multivariant playlist, follow the
// renditions it picked.
asio::awaitable<void> viewer(Worker& w, const Plan& plan, Clock::time_point start_at, std::size_t index) {
  asio::steady_timer timer(w.ctx, start_at);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (Clock::now() >= plan.deadline) co_return;
  auto v = std::make_shared<Viewer>(w, plan, plan.seconds(start_at));
  auto conn = std::make_unique<http::Connection>(w.ctx.get_executor(), plan.url.endpoint, plan.limits);
  std::string video;
  while (video.empty()) {
    if (v->over()) co_return;
    auto f = co_await fetch(*v, *conn, plan.url.target);
    if (f.ok) {
      std::string_view text = as_chars(f.body.view());
      auto m = parse_multivariant(f.body);
      const Variant* variant = m ? first_video_variant(*m) : nullptr;
      if (variant && plan.opt.abr && !v->abr) {
        // Every variant is a candidate; the player starts on the lowest (audio: the first video variant's group).
        for (auto& candidate : m->variants) {
          auto t = resolve_uri(plan.url.target, candidate.uri, plan.url.endpoint);
          if (!t) continue;
          v->variant_targets.push_back(std::move(*t));
          v->variant_bandwidths.push_back(candidate.bandwidth);
        }
        if (!v->variant_targets.empty()) {
          double link = plan.bandwidth ? plan.bandwidth->of(index, plan.opt.viewers) : 0;
          v->abr.emplace(v->variant_bandwidths, link);
        }
      }
      if (variant) {
        auto target = resolve_uri(plan.url.target, variant->uri, plan.url.endpoint);
        const MediaRendition* audio = plan.opt.audio ? audio_rendition(*m, *variant) : nullptr;
        auto audio_target = audio ? resolve_uri(plan.url.target, audio->uri, plan.url.endpoint) : Result<std::string>();
        if (target && audio_target) {
          video = v->abr ? v->variant_targets[v->abr->current()] : std::move(*target);
          if (audio) v->audio_target = std::move(*audio_target);
        } else {
          v->error("bad_uri");
        }
      } else if (m && text.find("#EXT-X-TARGETDURATION") != std::string_view::npos) {
        video = plan.url.target;  // the URL is a media playlist itself
      } else {
        v->error(m ? "no_variant" : "bad_playlist");
      }
    }
    if (video.empty() && !co_await backoff(*v)) co_return;
  }
  if (plan.opt.mode == Mode::ll)
    co_await ll_track(v, std::move(conn), std::move(video), 0);
  else
    co_await poll_track(v, std::move(conn), std::move(video), 0);
}

Percentiles percentiles_ms(const Histogram& h) {
  Percentiles p;
  p.count = h.count();
  p.p50 = h.quantile_us(0.50) / 1000;
  p.p95 = h.quantile_us(0.95) / 1000;
  p.p99 = h.quantile_us(0.99) / 1000;
  p.max = static_cast<double>(h.max_us()) / 1000;
  return p;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string ms(double v) {
  return v >= 1000 ? fmt::format("{:.2f} s", v / 1000) : fmt::format("{:.1f} ms", v);
}

std::string line(const char* name, const Percentiles& p) {
  if (p.count == 0) return fmt::format("{:<14}(no samples)\n", name);
  return fmt::format("{:<14}p50 {}  p95 {}  p99 {}  max {}  ({} samples)\n", name, ms(p.p50), ms(p.p95), ms(p.p99),
                     ms(p.max), p.count);
}

nlohmann::json json_of(const Percentiles& p) {
  return {{"count", p.count}, {"p50_ms", p.p50}, {"p95_ms", p.p95}, {"p99_ms", p.p99}, {"max_ms", p.max}};
}

}  // namespace

std::uint64_t Summary::error_count() const {
  std::uint64_t n = 0;
  for (auto& [k, v] : errors) n += v;
  return n;
}

std::uint64_t raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur;
}

Result<Summary> run(const Options& options, std::FILE* progress) {
  auto url = parse_http_url(options.url);
  if (!url) {
    log::error("loadgen", "unsupported URL (expected http://host:port/path)", {{"url", options.url}});
    return std::unexpected(url.error());
  }
  if (options.viewers == 0 || options.threads == 0 || options.duration.count() <= 0)
    return fail(errc::invalid_argument);
  std::uint64_t fds = raise_open_file_limit();
  std::uint64_t need = options.viewers * (options.audio ? 2 : 1) + 64;
  if (fds < need) {
    log::error("loadgen", "not enough file descriptors for one connection per viewer and rendition",
               {{"need", need}, {"limit", fds}});
    return fail(errc::limit_exceeded);
  }

  Plan plan;
  plan.opt = options;
  if (options.abr && !options.bandwidth.empty()) {
    auto b = BandwidthPlan::parse(options.bandwidth);
    if (!b) {
      log::error("loadgen", "bad --bandwidth (expected 3M, 1M-8M or 500k,2M,6M)", {{"bandwidth", options.bandwidth}});
      return std::unexpected(b.error());
    }
    plan.bandwidth = *b;
  }
  plan.url = std::move(*url);
  // With an address in the URL nothing but the worker's own thread touches its context; a host
  // name is resolved by Asio's resolver thread, which posts back: then the contexts keep their locks.
  boost::system::error_code not_ip;
  asio::ip::make_address(plan.url.endpoint.host, not_ip);
  bool single_threaded = !not_ip;
  plan.limits.timeout = options.timeout;
  plan.t0 = Clock::now() + milliseconds(50);
  plan.deadline = plan.t0 + options.duration;
  std::optional<Plan> reference_plan;
  if (!options.reference.empty()) {
    auto ref = parse_http_url(options.reference);
    if (!ref || options.mode != Mode::ll) {
      log::error("loadgen", "--reference needs ll mode and an http://host:port/path URL", {{"url", options.reference}});
      return fail(errc::invalid_argument);
    }
    boost::system::error_code ref_not_ip;
    asio::ip::make_address(ref->endpoint.host, ref_not_ip);
    single_threaded = single_threaded && !ref_not_ip;
    reference_plan = plan;
    reference_plan->url = std::move(*ref);
  }

  double cpu_start = cpu_now();
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::size_t i = 0; i < options.threads; ++i) workers.push_back(std::make_unique<Worker>(single_threaded));
  if (reference_plan)  // before the viewers: it should see the parts before any of them does
    for (auto& w : workers)
      asio::co_spawn(w->ctx, reference_player(std::make_shared<Viewer>(*w, w->reference_stats, *reference_plan, 0.0)),
                     log_exception);
  auto ramp = std::min<Clock::duration>(options.ramp, options.duration);
  for (std::size_t i = 0; i < options.viewers; ++i) {
    auto& w = *workers[i % workers.size()];
    auto at = plan.t0 + ramp * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(options.viewers);
    asio::co_spawn(w.ctx, viewer(w, plan, at, i), log_exception);
  }
  std::atomic<std::size_t> running{workers.size()};
  std::vector<std::thread> threads;
  for (auto& w : workers)
    threads.emplace_back([&ctx = w->ctx, &running] {
      ctx.run();
      --running;
    });

  // Progress lines until every worker ran out of work (the deadline ends all of it).
  auto next_report = plan.t0 + options.progress_every;
  std::uint64_t last_requests = 0, last_bytes = 0;
  auto last_time = plan.t0;
  while (running.load() > 0) {
    std::this_thread::sleep_for(milliseconds(20));
    if (!progress || options.progress_every.count() <= 0 || Clock::now() < next_report) continue;
    std::uint64_t req = 0, bytes = 0, started = 0, failed = 0, errors = 0;
    for (auto& w : workers) {
      req += w->stats.requests.get();
      bytes += w->stats.bytes.get();
      started += w->stats.started.get();
      failed += w->stats.failed.get();
      errors += w->stats.errors.get();
    }
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - last_time).count();
    std::fprintf(progress, "loadgen t=%.0fs started %llu/%zu failed %llu  %.0f req/s  %s/s  errors %llu\n",
                 plan.seconds(now), static_cast<unsigned long long>(started), options.viewers,
                 static_cast<unsigned long long>(failed), static_cast<double>(req - last_requests) / dt,
                 human_bytes(static_cast<double>(bytes - last_bytes) / dt).c_str(),
                 static_cast<unsigned long long>(errors));
    std::fflush(progress);
    last_requests = req;
    last_bytes = bytes;
    last_time = now;
    next_report += options.progress_every;
  }
  for (auto& t : threads) t.join();

  Summary s;
  s.cpu_seconds = cpu_now() - cpu_start;
  s.options = options;
  s.viewers = options.viewers;
  s.seconds = std::chrono::duration<double>(std::max(Clock::now(), plan.deadline) - plan.t0).count();
  Histogram startup, live_edge, delivery, age, since_origin;
  for (auto& w : workers) {
    auto& st = w->stats;
    since_origin.merge(st.part_since_origin);
    s.parts_unreferenced += st.parts_unreferenced;
    if (reference_plan) s.reference_errors += w->reference_stats.errors.get();
    startup.merge(st.startup);
    live_edge.merge(st.live_edge);
    delivery.merge(st.part_delivery);
    age.merge(st.part_age);
    s.requests += st.requests.get();
    s.bytes += st.bytes.get();
    s.started += st.started.get();
    s.ok += st.ok;
    s.playlists += st.playlists;
    s.parts += st.parts;
    s.segments += st.segments;
    s.inits += st.inits;
    s.delta_playlists += st.delta_playlists;
    s.stalls += st.stalls;
    s.stalled_viewers += st.stalled_viewers;
    s.stall_seconds += st.stall_seconds;
    for (auto& [k, v] : st.errors_by_kind) s.errors[k] += v;
    s.abr_up += st.abr_up;
    s.abr_down += st.abr_down;
    for (auto& [k, v] : st.media_by_bandwidth) s.media_by_bandwidth[k] += v;
  }
  s.failed = s.viewers - s.ok;  // gave up, never started, or never got to begin before the end
  s.startup = percentiles_ms(startup);
  s.live_edge = percentiles_ms(live_edge);
  s.part_delivery = percentiles_ms(delivery);
  s.part_age = percentiles_ms(age);
  s.part_since_origin = percentiles_ms(since_origin);
  return s;
}

std::string format_summary(const Summary& s) {
  const auto& o = s.options;
  std::string out = fmt::format(
      "streamflex loadgen: {} viewers, {} mode{}{}, {:.1f} s (ramp {:.1f} s), {} thread(s)\n  {}\n", s.viewers,
      o.mode == Mode::ll ? "ll" : "poll", o.audio ? " + audio" : "",
      o.skip && o.mode == Mode::ll ? " + delta updates" : "", s.seconds, o.ramp.count() / 1000.0, o.threads, o.url);
  out += fmt::format("{:<14}started {}  ok {}  failed {}\n", "viewers", s.started, s.ok, s.failed);
  double secs = std::max(s.seconds, 1e-9);
  out += fmt::format("{:<14}{} requests ({:.1f}/s), {} ({}/s)\n", "traffic", s.requests, s.requests / secs,
                     human_bytes(static_cast<double>(s.bytes)), human_bytes(static_cast<double>(s.bytes) / secs));
  out += fmt::format("{:<14}{} playlists ({} delta updates), {} parts, {} segments, {} init\n", "downloads",
                     s.playlists, s.delta_playlists, s.parts, s.segments, s.inits);
  out += line("startup", s.startup);
  out += line("live edge", s.live_edge);
  if (o.mode == Mode::ll) {
    out += line("part delivery", s.part_delivery);
    out += line("part age", s.part_age);
    if (!o.reference.empty()) {
      out += line("since origin", s.part_since_origin);
      out += fmt::format("{:<14}{} parts not seen by the reference, {} reference errors\n", "", s.parts_unreferenced,
                         s.reference_errors);
    }
  }
  out +=
      fmt::format("{:<14}{} ({} viewers, {:.1f} s stalled)\n", "stalls", s.stalls, s.stalled_viewers, s.stall_seconds);
  if (o.abr) {
    std::string by;
    for (auto& [bw, n] : s.media_by_bandwidth)
      by += fmt::format("{}{} kbit/s {}", by.empty() ? "" : ", ", bw / 1000, n);
    out += fmt::format("{:<14}link {}; switches {} up, {} down; {} by variant: {}\n", "abr",
                       o.bandwidth.empty() ? "unlimited" : o.bandwidth, s.abr_up, s.abr_down,
                       o.mode == Mode::ll ? "parts" : "segments", by.empty() ? "none" : by);
  }
  out +=
      fmt::format("{:<14}{:.1f} s CPU, {:.0f} % of one core\n", "loadgen", s.cpu_seconds, 100 * s.cpu_seconds / secs);
  std::string errors;
  for (auto& [k, v] : s.errors) errors += fmt::format("{}{} {}", errors.empty() ? "" : ", ", k, v);
  out += fmt::format("{:<14}{}\n", "errors", errors.empty() ? "none" : errors);
  return out;
}

nlohmann::json to_json(const Summary& s) {
  const auto& o = s.options;
  nlohmann::json errors = nlohmann::json::object();
  for (auto& [k, v] : s.errors) errors[k] = v;
  nlohmann::json by_bandwidth = nlohmann::json::object();
  for (auto& [k, v] : s.media_by_bandwidth) by_bandwidth[std::to_string(k)] = v;
  return {
      {"options",
       {{"url", o.url},
        {"viewers", o.viewers},
        {"duration_s", o.duration.count() / 1000.0},
        {"ramp_s", o.ramp.count() / 1000.0},
        {"mode", o.mode == Mode::ll ? "ll" : "poll"},
        {"threads", o.threads},
        {"audio", o.audio},
        {"skip", o.skip},
        {"abr", o.abr},
        {"bandwidth", o.bandwidth},
        {"reference", o.reference}}},
      {"seconds", s.seconds},
      {"viewers", {{"total", s.viewers}, {"started", s.started}, {"ok", s.ok}, {"failed", s.failed}}},
      {"requests", s.requests},
      {"requests_per_s", s.requests / std::max(s.seconds, 1e-9)},
      {"bytes", s.bytes},
      {"bytes_per_s", static_cast<double>(s.bytes) / std::max(s.seconds, 1e-9)},
      {"downloads",
       {{"playlists", s.playlists},
        {"delta_playlists", s.delta_playlists},
        {"parts", s.parts},
        {"segments", s.segments},
        {"inits", s.inits}}},
      {"startup", json_of(s.startup)},
      {"live_edge", json_of(s.live_edge)},
      {"part_delivery", json_of(s.part_delivery)},
      {"part_age", json_of(s.part_age)},
      {"part_since_origin", json_of(s.part_since_origin)},
      {"parts_unreferenced", s.parts_unreferenced},
      {"reference_errors", s.reference_errors},
      {"stalls", {{"count", s.stalls}, {"viewers", s.stalled_viewers}, {"seconds", s.stall_seconds}}},
      {"errors", errors},
      {"error_count", s.error_count()},
      {"cpu_seconds", s.cpu_seconds},
      {"abr", {{"switches_up", s.abr_up}, {"switches_down", s.abr_down}, {"media_by_bandwidth", by_bandwidth}}},
  };
}

}  // namespace sf::loadgen
