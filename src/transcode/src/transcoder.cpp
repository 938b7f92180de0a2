#include "sf/transcode/transcoder.h"

#include <prometheus/collectable.h>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <stdexcept>
#include <thread>

extern "C" {
#include <libavutil/log.h>
}

#include "encoder.h"
#include "passaudio.h"
#include "pipeline.h"
#include "sf/core/log.h"

namespace sf::transcode {

namespace {

// Video and AAC untouched; other audio encoded to AAC on the worker pool (passaudio.h).
class PassthroughInput final : public StreamInput {
 public:
  explicit PassthroughInput(std::shared_ptr<PassthroughAudio> p) : p_(std::move(p)) {}
  ~PassthroughInput() override { p_->finish(); }
  void on_track(const media::TrackConfig& track) override { p_->on_track(track); }
  void on_frame(const media::MediaFrame& frame) override { p_->on_frame(frame); }

 private:
  std::shared_ptr<PassthroughAudio> p_;
};

class PipelineInput final : public StreamInput {
 public:
  explicit PipelineInput(std::shared_ptr<Pipeline> p) : p_(std::move(p)) {}
  ~PipelineInput() override { p_->finish(); }
  void on_track(const media::TrackConfig& track) override { p_->on_track(track); }
  void on_frame(const media::MediaFrame& frame) override { p_->on_frame(frame); }

 private:
  std::shared_ptr<Pipeline> p_;
};

}  // namespace

struct Transcoder::Impl : prometheus::Collectable {
  Config config;
  std::vector<Profile> profiles;
  std::size_t threads;
  boost::asio::thread_pool pool;
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<PoolLoad> load = std::make_shared<PoolLoad>();
  mutable std::mutex mu;
  std::vector<std::weak_ptr<Pipeline>> streams;
  std::vector<std::weak_ptr<PassthroughAudio>> passthrough;  // listed while their audio is encoded

  Impl(Config c, std::vector<Profile> p, std::size_t n)
      : config(std::move(c)), profiles(std::move(p)), threads(n), pool(n) {
    load->threads = n;
  }

  const Profile* find(std::string_view name) const {
    for (auto& p : profiles)
      if (p.name == name) return &p;
    return nullptr;
  }

  std::vector<std::shared_ptr<Pipeline>> live() const {
    std::lock_guard lk(mu);
    std::vector<std::shared_ptr<Pipeline>> out;
    for (auto& w : streams)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }

  // Every live stream's figures: the ladders', then the passthrough streams' whose audio is encoded.
  std::vector<StreamStats> all_stats(std::size_t max) const {
    std::vector<StreamStats> out;
    for (auto& p : live())
      if (out.size() < max) out.push_back(p->stats());
    std::vector<std::shared_ptr<PassthroughAudio>> pass;
    {
      std::lock_guard lk(mu);
      for (auto& w : passthrough)
        if (auto s = w.lock()) pass.push_back(std::move(s));
    }
    for (auto& p : pass)
      if (auto s = p->stats(); s && out.size() < max) out.push_back(std::move(*s));
    return out;
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    auto stats = all_stats(std::size_t(config.max_stream_labels));
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
    auto speed = family("streamflex_transcode_speed", "Media seconds transcoded per wall second (1 = real time)",
                        MetricType::Gauge);
    auto cpu = family("streamflex_transcode_cpu_seconds_total",
                      "Worker CPU time spent decoding, scaling and encoding a stream", MetricType::Counter);
    auto queue = family("streamflex_transcode_queue_frames", "Source frames queued, not yet out of every rung",
                        MetricType::Gauge);
    auto dropped = family("streamflex_transcode_dropped_rungs_total",
                          "Rungs dropped because the stream fell behind real time", MetricType::Counter);
    auto restored = family("streamflex_transcode_restored_rungs_total",
                           "Dropped rungs brought back once the stream kept ahead of real time", MetricType::Counter);
    auto skipped =
        family("streamflex_transcode_skipped_frames_total",
               "Source frames skipped (queue full, undecodable, or time going backwards)", MetricType::Counter);
    auto rate = family("streamflex_transcode_rung_bitrate_bps",
                       "A rung's encoded bit rate, bits per second of media, over the last second or more of media",
                       MetricType::Gauge);
    auto declared = family("streamflex_transcode_rung_declared_bps", "A rung's declared peak bit rate (BANDWIDTH)",
                           MetricType::Gauge);
    auto active =
        family("streamflex_transcode_rung_active", "1 while a rung is encoded, 0 once dropped", MetricType::Gauge);
    auto frames = family("streamflex_transcode_rung_frames_total", "Frames encoded per rung", MetricType::Counter);
    auto streams_fam = family("streamflex_transcode_streams", "Streams being transcoded", MetricType::Gauge);
    for (auto& s : stats) {
      sample(speed, {{"stream", s.stream}}, s.speed);
      sample(queue, {{"stream", s.stream}}, double(s.queue_frames));
      sample(cpu, {{"stream", s.stream}}, s.cpu_seconds);
      sample(dropped, {{"stream", s.stream}}, double(s.dropped_rungs));
      sample(restored, {{"stream", s.stream}}, double(s.restored_rungs));
      sample(skipped, {{"stream", s.stream}}, double(s.skipped_frames));
      for (auto& r : s.rungs) {
        sample(rate, {{"stream", s.stream}, {"rung", r.name}}, r.bitrate_bps);
        sample(declared, {{"stream", s.stream}, {"rung", r.name}}, double(r.declared_bps));
        sample(active, {{"stream", s.stream}, {"rung", r.name}}, r.active ? 1 : 0);
        sample(frames, {{"stream", s.stream}, {"rung", r.name}}, double(r.frames));
      }
    }
    sample(streams_fam, {}, double(stats.size()));
    return {speed, cpu, queue, dropped, restored, skipped, rate, declared, active, frames, streams_fam};
  }
};

Transcoder::Transcoder(Config config, Metrics& metrics) {
  av_log_set_level(AV_LOG_ERROR);  // libx264's per-encoder summaries are not our log
  std::vector<Profile> profiles{default_profile(), default_source_profile(), passthrough_profile()};
  std::string error;
  auto extra = parse_profiles(config.profiles, &error);
  if (!extra) throw std::invalid_argument("transcode.profiles: " + error);
  for (auto& p : *extra) {
    auto same = std::find_if(profiles.begin(), profiles.end(), [&](auto& q) { return q.name == p.name; });
    if (same != profiles.end())
      *same = std::move(p);
    else
      profiles.push_back(std::move(p));
  }
  if (std::none_of(profiles.begin(), profiles.end(), [&](auto& p) { return p.name == config.profile; }))
    throw std::invalid_argument("transcode.profile: no profile named '" + config.profile + "'");
  if (config.audio != "auto" && config.audio != "aac")
    throw std::invalid_argument("transcode.audio: 'auto' or 'aac', not '" + config.audio + "'");
  if (!parse_scaler(config.scaler))
    throw std::invalid_argument("transcode.scaler: 'zimg' or 'swscale', not '" + config.scaler + "'");
  if (!have_encoder(config.encoder))
    throw std::invalid_argument("transcode.encoder: libavcodec has no video encoder '" + config.encoder + "'");
  std::size_t n = config.threads > 0 ? std::size_t(config.threads) : std::max(1u, std::thread::hardware_concurrency());
  impl_ = std::make_shared<Impl>(std::move(config), std::move(profiles), n);
  metrics.add_collectable(impl_);
}

Transcoder::~Transcoder() {
  *impl_->stopping = true;
  impl_->pool.join();
}

std::vector<std::string> Transcoder::profiles() const {
  std::vector<std::string> out;
  for (auto& p : impl_->profiles) out.push_back(p.name);
  return out;
}

bool Transcoder::has_profile(std::string_view name) const {
  return impl_->find(name) != nullptr;
}

std::unique_ptr<StreamInput> Transcoder::open_stream(std::string_view stream, std::string_view profile,
                                                     std::shared_ptr<Sink> sink,
                                                     std::chrono::milliseconds keyframe_interval) {
  const Profile* p = impl_->find(profile.empty() ? std::string_view(impl_->config.profile) : profile);
  if (!p) {
    log::warn("transcode", "unknown profile: the configured default is used",
              {{"stream", stream}, {"profile", profile}});
    p = impl_->find(impl_->config.profile);
  }
  if (!p->transcode) {
    auto pass = std::make_shared<PassthroughAudio>(
        impl_->pool, std::string(stream), std::move(sink), impl_->stopping, impl_->config.audio == "aac",
        std::size_t(std::max<std::int64_t>(2, impl_->config.max_queue_frames)));
    {
      std::lock_guard lk(impl_->mu);
      std::erase_if(impl_->passthrough, [](auto& w) { return w.expired(); });
      impl_->passthrough.push_back(pass);
    }
    return std::make_unique<PassthroughInput>(std::move(pass));
  }
  PipelineOptions opt;
  opt.stream = std::string(stream);
  opt.profile = *p;
  opt.encoder = impl_->config.encoder;
  auto grid = keyframe_interval.count() > 0 ? keyframe_interval : impl_->config.keyframe_interval;
  opt.keyframe_ticks = std::max<std::int64_t>(1, grid.count() * 90);
  opt.max_lag = impl_->config.max_lag.count() / 1000.0;
  opt.restore.hold = impl_->config.restore_hold.count() / 1000.0;
  opt.restore.max_hold = std::max(opt.restore.hold, impl_->config.restore_max_hold.count() / 1000.0);
  opt.restore.calm_lag = opt.max_lag / 4;
  opt.restore.max_load = impl_->config.restore_load;
  opt.load = impl_->load;
  opt.max_queue = std::size_t(std::max<std::int64_t>(2, impl_->config.max_queue_frames));
  opt.scaler = *parse_scaler(impl_->config.scaler);
  opt.cascade = impl_->config.cascade;
  opt.backpressure = impl_->config.backpressure;
  opt.audio_always = impl_->config.audio == "aac";
  auto pipeline = std::make_shared<Pipeline>(impl_->pool, std::move(opt), std::move(sink), impl_->stopping);
  {
    std::lock_guard lk(impl_->mu);
    std::erase_if(impl_->streams, [](auto& w) { return w.expired(); });
    impl_->streams.push_back(pipeline);
  }
  log::info("transcode", "stream opened", {{"stream", stream}, {"profile", p->name}, {"workers", impl_->threads}});
  return std::make_unique<PipelineInput>(std::move(pipeline));
}

std::vector<StreamStats> Transcoder::stats() const {
  return impl_->all_stats(SIZE_MAX);
}

}  // namespace sf::transcode
