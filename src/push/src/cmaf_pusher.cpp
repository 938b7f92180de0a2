#include "sf/push/cmaf_pusher.h"

#include <prometheus/collectable.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "sf/cmaf/fmp4.h"
#include "sf/core/log.h"
#include "sf/http/client.h"

namespace sf::push {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};

// One request's body: a CMAF chunk (moof+mdat header, then the frames' bytes), and the init
// segment it decodes with (sent first whenever the origin has not got it).
struct Object {
  std::uint64_t id = 0;
  std::vector<Bytes> pieces;
  std::size_t bytes = 0;
  bool key = false;  // starts with a keyframe: where a representation may resume
  Bytes init;
  bool end = false;  // not media: DELETE the representation (its rung was dropped; the origin stops waiting for it)
  std::uint32_t epoch = 0;  // its frames' MediaFrame::epoch: sent as StreamFlex-Epoch when not 0
};

struct Rep {
  Rep(asio::io_context& ctx) : wake(ctx), retry(ctx) { wake.expires_at(asio::steady_timer::time_point::max()); }
  std::string name, path, content_type;
  std::deque<Object> queue;
  std::size_t queued = 0;
  bool skipping = false;  // dropping until a chunk that starts with a keyframe
  Bytes sent_init;        // the init segment the origin has for this representation, as far as we know
  bool done = false;
  bool failing = false;  // logged once per outage
  int end_failures = 0;  // failures since the publish ended
  asio::steady_timer wake;
  asio::steady_timer retry;
};

}  // namespace

struct StreamState {
  StreamState(std::shared_ptr<Pusher::Impl> o, std::string n, asio::io_context& c)
      : owner(std::move(o)), name(std::move(n)), ctx(c) {}
  std::shared_ptr<Pusher::Impl> owner;
  std::string name;
  asio::io_context& ctx;
  std::vector<std::pair<std::string, std::string>> settings;  // StreamFlex-* headers of every POST
  // On ctx only:
  std::unique_ptr<http::Pool> http;
  std::map<std::string, std::unique_ptr<Rep>> reps;
  std::uint64_t next_id = 1;
  bool ending = false;
  bool stopped = false;
  bool deleted = false;
  // Any thread (metrics):
  std::atomic<std::uint64_t> objects{0}, bytes{0}, failures{0}, dropped{0}, queue_bytes{0};
};

struct Pusher::Impl : prometheus::Collectable, std::enable_shared_from_this<Pusher::Impl> {
  Impl(net::IoPool& p, Config c, net::Endpoint ep) : pool(p), config(std::move(c)), origin(std::move(ep)) {}
  net::IoPool& pool;
  Config config;
  net::Endpoint origin;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> objects{0}, bytes{0}, failures{0}, dropped{0};
  mutable std::mutex mu;
  std::vector<std::weak_ptr<StreamState>> streams;

  std::vector<std::shared_ptr<StreamState>> live() const {
    std::lock_guard lk(mu);
    std::vector<std::shared_ptr<StreamState>> out;
    for (auto& w : streams)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    auto family = [](const char* name, const char* help, MetricType type) {
      return prometheus::MetricFamily{name, help, type, {}};
    };
    auto sample = [](prometheus::MetricFamily& f, std::vector<prometheus::ClientMetric::Label> labels, double v) {
      prometheus::ClientMetric m;
      m.label = std::move(labels);
      if (f.type == MetricType::Gauge)
        m.gauge.value = v;
      else
        m.counter.value = v;
      f.metric.push_back(std::move(m));
    };
    auto objects_f = family("streamflex_transcode_push_objects_total",
                            "CMAF objects (init segments and chunks) the origin accepted; no label: every stream "
                            "since start",
                            MetricType::Counter);
    auto bytes_f =
        family("streamflex_transcode_push_bytes_total", "Body bytes of the accepted CMAF objects", MetricType::Counter);
    auto failures_f = family("streamflex_transcode_push_failures_total",
                             "CMAF ingest requests that failed or that the origin refused", MetricType::Counter);
    auto dropped_f =
        family("streamflex_transcode_push_dropped_total",
               "CMAF chunks dropped (queue full, or skipped to a keyframe after a failure)", MetricType::Counter);
    auto queue_f =
        family("streamflex_transcode_push_queue_bytes", "Bytes of CMAF chunks waiting to be pushed", MetricType::Gauge);
    std::size_t n = 0;
    for (auto& s : live()) {
      if (n++ >= std::size_t(config.max_stream_labels)) break;
      sample(objects_f, {{"stream", s->name}}, double(s->objects));
      sample(bytes_f, {{"stream", s->name}}, double(s->bytes));
      sample(failures_f, {{"stream", s->name}}, double(s->failures));
      sample(dropped_f, {{"stream", s->name}}, double(s->dropped));
      sample(queue_f, {{"stream", s->name}}, double(s->queue_bytes));
    }
    sample(objects_f, {}, double(objects));
    sample(bytes_f, {}, double(bytes));
    sample(failures_f, {}, double(failures));
    sample(dropped_f, {}, double(dropped));
    return {objects_f, bytes_f, failures_f, dropped_f, queue_f};
  }
};

namespace {

void count_dropped(StreamState& s, std::uint64_t n) {
  s.dropped += n;
  s.owner->dropped += n;
}

void pop_front(StreamState& s, Rep& r) {
  r.queued -= r.queue.front().bytes;
  s.queue_bytes -= r.queue.front().bytes;
  r.queue.pop_front();
}

// After a failure the representation resumes at a keyframe: what precedes the next one goes.
void skip_to_keyframe(StreamState& s, Rep& r) {
  std::uint64_t n = 0;
  while (!r.queue.empty() && !r.queue.front().key && !r.queue.front().end) {
    pop_front(s, r);
    ++n;
  }
  count_dropped(s, n);
  if (r.queue.empty()) r.skipping = true;
}

std::vector<std::pair<std::string, std::string>> headers_of(const StreamState& s, const Rep& r) {
  std::vector<std::pair<std::string, std::string>> h{{"Authorization", "Bearer " + s.owner->config.secret},
                                                     {"Content-Type", r.content_type}};
  h.insert(h.end(), s.settings.begin(), s.settings.end());
  return h;
}

asio::awaitable<void> send_delete(std::shared_ptr<StreamState> s) {
  if (!s->http || s->stopped) co_return;
  auto path = "/ingest/" + s->name + "/";
  std::vector<std::pair<std::string, std::string>> headers{{"Authorization", "Bearer " + s->owner->config.secret}};
  auto r = co_await s->http->request("DELETE", path, std::move(headers), s->owner->config.timeout);
  if (r && r->status / 100 == 2)
    log::info("push", "stream ended at the origin", {{"stream", s->name}});
  else
    log::warn("push", "end of stream not acknowledged by the origin (it ends after origin.ingest_idle)",
              {{"stream", s->name}, {"error", r ? std::to_string(r->status) : r.error().message()}});
  s->http.reset();
}

// One representation's pushes, in order, on the stream's context.
asio::awaitable<void> drain(std::shared_ptr<StreamState> s, Rep* r) {
  const auto& cfg = s->owner->config;
  auto backoff = kFirstBackoff;
  error_code ec;
  for (;;) {
    if (s->stopped) break;
    if (r->queue.empty()) {
      if (s->ending) break;
      co_await r->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    const Object& front = r->queue.front();
    std::uint64_t id = front.id;
    if (front.end) {
      // Best effort: an origin that misses it waits for the representation a few seconds longer.
      std::vector<std::pair<std::string, std::string>> headers{{"Authorization", "Bearer " + s->owner->config.secret}};
      auto res = co_await s->http->request("DELETE", r->path, std::move(headers), cfg.timeout);
      if (s->stopped) break;
      if (!res || res->status / 100 != 2)
        log::info("push", "end of a representation not acknowledged by the origin",
                  {{"stream", s->name}, {"representation", r->name}});
      if (!r->queue.empty() && r->queue.front().id == id) pop_front(*s, *r);
      continue;
    }
    bool init_step = front.init.data() != r->sent_init.data() || front.init.size() != r->sent_init.size();
    Bytes init = front.init;
    std::vector<Bytes> body = init_step ? std::vector<Bytes>{init} : front.pieces;
    std::size_t size = init_step ? init.size() : front.bytes;
    auto headers = headers_of(*s, *r);
    if (!init_step && front.epoch > 0) headers.emplace_back("StreamFlex-Epoch", std::to_string(front.epoch));
    auto res = co_await s->http->request_with_pieces("POST", r->path, std::move(headers), std::move(body), cfg.timeout);
    if (s->stopped) break;
    if (res && res->status / 100 == 2) {
      s->objects += 1;
      s->bytes += size;
      s->owner->objects += 1;
      s->owner->bytes += size;
      if (init_step)
        r->sent_init = init;
      else if (!r->queue.empty() && r->queue.front().id == id)
        pop_front(*s, *r);
      if (r->failing) log::info("push", "origin accepts again", {{"stream", s->name}, {"representation", r->name}});
      r->failing = false;
      backoff = kFirstBackoff;
      continue;
    }
    s->failures += 1;
    s->owner->failures += 1;
    std::string why = res ? "HTTP " + std::to_string(res->status) : res.error().message();
    if (!r->failing)
      log::warn("push", "origin push failed; retrying with backoff",
                {{"stream", s->name}, {"representation", r->name}, {"error", why}});
    r->failing = true;
    r->sent_init = {};  // a restarted origin knows nothing: the init segment goes again
    // A refusal of this object (not of the origin's state) is not retried: it is dropped.
    bool refused = res && res->status >= 400 && res->status < 500 && res->status != 403 && res->status != 408 &&
                   res->status != 429;
    if (refused && !init_step && !r->queue.empty() && r->queue.front().id == id) {
      pop_front(*s, *r);
      count_dropped(*s, 1);
    }
    skip_to_keyframe(*s, *r);
    if (s->ending && ++r->end_failures > 3) {  // the publish ended: no retrying forever
      count_dropped(*s, r->queue.size());
      while (!r->queue.empty()) pop_front(*s, *r);
      break;
    }
    r->retry.expires_after(backoff);
    co_await r->retry.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    backoff = std::min(backoff * 2, std::max(kFirstBackoff, cfg.max_backoff));
  }
  r->done = true;
  if (s->stopped || !s->ending || s->deleted) co_return;
  for (auto& [_, other] : s->reps)
    if (!other->done) co_return;
  s->deleted = true;  // the last representation out ends the stream
  co_await send_delete(s);
}

void enqueue(const std::shared_ptr<StreamState>& s, const std::string& name, bool audio, Object obj) {
  if (s->stopped || s->ending) return;
  if (!s->http) {
    http::ClientLimits limits;
    limits.timeout = s->owner->config.timeout;
    limits.connect_timeout = std::min(s->owner->config.timeout, std::chrono::milliseconds(2000));
    limits.max_body_bytes = 64 * 1024;
    s->http = std::make_unique<http::Pool>(s->ctx.get_executor(), s->owner->origin, 8, 1000, limits);
  }
  auto& slot = s->reps[name];
  if (!slot) {
    slot = std::make_unique<Rep>(s->ctx);
    slot->name = name;
    slot->path = "/ingest/" + s->name + "/Streams(" + name + ")";
    slot->content_type = audio ? "audio/mp4" : "video/mp4";
    asio::co_spawn(s->ctx, drain(s, slot.get()), asio::detached);
  }
  Rep& r = *slot;
  const auto limit = static_cast<std::size_t>(s->owner->config.queue_bytes);
  if (r.queued + obj.bytes > limit && !r.queue.empty()) {
    // The origin is slower than the stream: what waits is dropped, the next segment starts anew.
    count_dropped(*s, r.queue.size());
    while (!r.queue.empty()) pop_front(*s, r);
    r.skipping = true;
  }
  if (r.skipping && !obj.key && !obj.end) {
    count_dropped(*s, 1);
    return;
  }
  r.skipping = false;
  obj.id = s->next_id++;
  r.queued += obj.bytes;
  s->queue_bytes += obj.bytes;
  r.queue.push_back(std::move(obj));
  r.wake.cancel();
}

// The transcoder's side: frames gathered per track into CMAF chunks, each posted to the stream's
// context as it completes.
class PushSink final : public transcode::Sink {
 public:
  PushSink(std::shared_ptr<StreamState> s, std::shared_ptr<const ArrivalAnchor> anchor)
      : s_(std::move(s)), anchor_(std::move(anchor)) {}
  ~PushSink() override {
    for (auto& [_, t] : tracks_) flush(t, t.last_dts + t.last_duration);
    asio::post(s_->ctx, [s = s_] {
      s->ending = true;
      if (s->reps.empty()) return;
      for (auto& [_, r] : s->reps) r->wake.cancel();
    });
  }

  void on_track(const media::TrackConfig& track) override {
    auto& t = tracks_[track.track_id];
    if (!t.frames.empty()) flush(t, t.last_dts + t.last_duration);
    t.config = track;
    t.withdrawn = false;
    t.rep = !track.name.empty() ? track.name : track.type == media::MediaType::video ? "video" : "audio";
    auto init = cmaf::write_init_segment(track);
    if (!init) {
      log::warn("push", "track not pushed: no CMAF header for it",
                {{"stream", s_->name}, {"track", track.track_id}, {"error", init.error().message()}});
      t.init = {};
      return;
    }
    t.init = std::move(*init);
  }

  void on_frame(const media::MediaFrame& frame) override {
    auto it = tracks_.find(frame.track_id);
    if (it == tracks_.end() || it->second.withdrawn || it->second.init.size() == 0) return;
    auto& t = it->second;
    if (!t.frames.empty()) {
      std::int64_t span = frame.dts - t.frames.front().dts;
      std::int64_t target = s_->owner->config.chunk_duration.count() * std::int64_t(t.config.timescale) / 1000;
      bool new_gop = frame.type == media::MediaType::video && frame.keyframe;
      // A chunk's frames share one epoch (one header per request): a new one starts a new chunk.
      if (new_gop || span >= target || frame.epoch != t.frames.front().epoch) flush(t, frame.dts);
    }
    if (t.last_dts != INT64_MIN && frame.dts > t.last_dts) t.last_duration = frame.dts - t.last_dts;
    t.last_dts = frame.dts;
    t.frames.push_back(frame);
  }

  void on_withdraw(std::uint32_t track_id) override {
    auto it = tracks_.find(track_id);
    if (it == tracks_.end()) return;
    auto& t = it->second;
    flush(t, t.last_dts + t.last_duration);
    t.withdrawn = true;
    if (t.init.size() == 0) return;
    Object end;
    end.end = true;
    asio::post(s_->ctx, [s = s_, name = t.rep, audio = t.config.type == media::MediaType::audio,
                         obj = std::move(end)]() mutable { enqueue(s, name, audio, std::move(obj)); });
  }

 private:
  struct Track {
    media::TrackConfig config;
    std::string rep;
    Bytes init;
    std::vector<media::MediaFrame> frames;
    std::uint32_t sequence = 1;
    std::int64_t last_dts = INT64_MIN;
    std::int64_t last_duration = 1;
    bool withdrawn = false;
  };

  void flush(Track& t, std::int64_t next_dts) {
    if (t.frames.empty()) return;
    if (next_dts <= t.frames.back().dts) next_dts = t.frames.back().dts + 1;
    auto chunk = cmaf::write_chunk(t.config, t.sequence++, t.frames, next_dts, false);
    Object obj;
    obj.key = t.frames.front().keyframe;
    obj.epoch = t.frames.front().epoch;
    obj.bytes = chunk.size();  // and the prft's, below
    obj.pieces.reserve(chunk.payload.size() + 2);
    if (auto mark = anchor_ ? anchor_->best() : std::nullopt; mark && t.config.timescale > 0) {
      // The chunk's first sample arrived where the anchor puts its media time.
      const auto& first = t.frames.front();
      double media = double(first.dts) / t.config.timescale;
      auto wall = mark->wall_ms + static_cast<std::int64_t>(std::llround((media - mark->media_seconds) * 1000));
      auto prft = write_prft(t.config.track_id, wall, static_cast<std::uint64_t>(std::max<std::int64_t>(0, first.dts)));
      obj.bytes += prft.size();
      obj.pieces.push_back(std::move(prft));
    }
    obj.pieces.push_back(std::move(chunk.header));
    for (auto& p : chunk.payload) obj.pieces.push_back(std::move(p));
    obj.init = t.init;
    t.frames.clear();
    asio::post(s_->ctx, [s = s_, name = t.rep, audio = t.config.type == media::MediaType::audio,
                         obj = std::move(obj)]() mutable { enqueue(s, name, audio, std::move(obj)); });
  }

  std::shared_ptr<StreamState> s_;
  std::shared_ptr<const ArrivalAnchor> anchor_;
  std::map<std::uint32_t, Track> tracks_;
};

Result<net::Endpoint> parse_origin(const std::string& url) {
  std::string_view u(url);
  if (!u.starts_with("http://")) return fail(errc::invalid_argument);
  u.remove_prefix(7);
  while (u.ends_with('/')) u.remove_suffix(1);
  if (u.empty() || u.find('/') != std::string_view::npos) return fail(errc::invalid_argument);
  std::string hostport(u);
  if (hostport.find(':') == std::string::npos || (hostport.front() == '[' && hostport.back() == ']')) hostport += ":80";
  return net::parse_endpoint(hostport);
}

}  // namespace

Pusher::Pusher(net::IoPool& pool, Config config, Metrics& metrics) {
  auto ep = parse_origin(config.origin_url);
  if (!ep)
    throw std::invalid_argument("transcode.origin_url: expected http://host:port, got '" + config.origin_url + "'");
  impl_ = std::make_shared<Impl>(pool, std::move(config), std::move(*ep));
  metrics.add_collectable(impl_);
}

Pusher::~Pusher() {
  stop();
}

Bytes write_prft(std::uint32_t track_id, std::int64_t wall_ms, std::uint64_t media_time) {
  // 14496-12 8.16.5: FullBox('prft', version 1, flags) { reference_track_ID, ntp_timestamp (64:
  // seconds since 1900 . fraction), media_time (64) }.
  constexpr std::uint64_t kNtpUnixOffset = 2208988800ULL;  // seconds from 1900 to 1970
  std::uint64_t ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, wall_ms));
  std::uint64_t ntp = ((ms / 1000 + kNtpUnixOffset) << 32) | (((ms % 1000) << 32) / 1000);
  MutableBytes b(32);
  auto* o = reinterpret_cast<std::uint8_t*>(b.data());
  auto put = [&o](std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) *o++ = static_cast<std::uint8_t>(v >> (8 * i));
  };
  put(32, 4);
  put(0x70726674, 4);  // "prft"
  put(1, 1);           // version
  put(24, 3);          // flags: captured (arrived)
  put(track_id, 4);
  put(ntp, 8);
  put(media_time, 8);
  return Bytes::freeze(std::move(b));
}

std::shared_ptr<transcode::Sink> Pusher::open_stream(std::string stream, std::shared_ptr<const ArrivalAnchor> anchor,
                                                     StreamSettings settings) {
  auto s = std::make_shared<StreamState>(impl_, std::move(stream), impl_->pool.next());
  if (!settings.latency.empty()) s->settings.emplace_back("StreamFlex-Latency", settings.latency);
  if (settings.part_target_ms > 0)
    s->settings.emplace_back("StreamFlex-Part-Target", std::to_string(settings.part_target_ms));
  if (settings.segment_target_ms > 0)
    s->settings.emplace_back("StreamFlex-Segment-Target", std::to_string(settings.segment_target_ms));
  {
    std::lock_guard lk(impl_->mu);
    std::erase_if(impl_->streams, [](auto& w) { return w.expired(); });
    impl_->streams.push_back(s);
  }
  if (impl_->stopping) s->stopped = true;
  return std::make_shared<PushSink>(std::move(s), std::move(anchor));
}

void Pusher::stop() {
  if (impl_->stopping.exchange(true)) return;
  for (auto& s : impl_->live())
    asio::post(s->ctx, [s] {
      s->stopped = true;
      for (auto& [_, r] : s->reps) {
        r->wake.cancel();
        r->retry.cancel();
      }
      s->http.reset();  // requests in flight end with errc::closed
    });
}

PushStats Pusher::totals() const {
  PushStats t;
  t.objects = impl_->objects;
  t.bytes = impl_->bytes;
  t.failures = impl_->failures;
  t.dropped = impl_->dropped;
  for (auto& s : impl_->live()) t.queue_bytes += s->queue_bytes;
  return t;
}

}  // namespace sf::push
