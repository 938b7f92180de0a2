#include "registry.h"

namespace sf::ingest {

Result<void> Registry::claim(const std::shared_ptr<LiveStream>& s, bool takeover) {
  std::shared_ptr<LiveStream> previous;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = streams_.try_emplace(s->info().stream, s);
    if (!inserted) {
      if (!takeover) return fail(errc::conflict);
      previous = std::move(it->second);
      it->second = s;
    }
  }
  if (previous && previous->stop) previous->stop("taken_over");
  return {};
}

void Registry::release(const LiveStream& s) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(s.info().stream);
  if (it != streams_.end() && it->second.get() == &s) streams_.erase(it);
}

std::vector<std::shared_ptr<LiveStream>> Registry::live() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<LiveStream>> out;
  for (auto& [_, s] : streams_) out.push_back(s);
  return out;
}

void Registry::stop_all(std::string_view reason) {
  for (auto& s : live())
    if (s->stop) s->stop(reason);
}

std::vector<prometheus::MetricFamily> Registry::Collect() const {
  using prometheus::MetricType;
  struct Def {
    const char* name;
    const char* help;
    MetricType type;
    double (*value)(const StreamStats&);
  };
  static const Def defs[] = {
      {"streamflex_ingest_stream_bitrate_bps", "Ingest bitrate over the last second", MetricType::Gauge,
       [](const StreamStats& s) { return s.bitrate_bps; }},
      {"streamflex_ingest_stream_fps", "Video frames per second over the last second", MetricType::Gauge,
       [](const StreamStats& s) { return s.fps; }},
      {"streamflex_ingest_stream_keyframe_interval_seconds", "Media time between the last two keyframes",
       MetricType::Gauge, [](const StreamStats& s) { return s.keyframe_interval_s; }},
      {"streamflex_ingest_stream_bytes_total", "Media payload bytes received", MetricType::Counter,
       [](const StreamStats& s) { return double(s.bytes); }},
      {"streamflex_ingest_stream_video_frames_total", "Video frames received", MetricType::Counter,
       [](const StreamStats& s) { return double(s.video_frames); }},
      {"streamflex_ingest_stream_audio_frames_total", "Audio frames received", MetricType::Counter,
       [](const StreamStats& s) { return double(s.audio_frames); }},
      {"streamflex_ingest_stream_dropped_frames_total", "Frames dropped (before a sequence header, or late)",
       MetricType::Counter, [](const StreamStats& s) { return double(s.dropped_frames); }},
      {"streamflex_ingest_stream_late_frames_total", "Frames whose decode time went backwards", MetricType::Counter,
       [](const StreamStats& s) { return double(s.late_frames); }},
      {"streamflex_ingest_stream_timestamp_jumps_total",
       "Timestamp jumps beyond ingest.max_timestamp_jump (a discontinuity, or rebased)", MetricType::Counter,
       [](const StreamStats& s) { return double(s.timestamp_jumps); }},
  };
  auto streams = live();
  // One snapshot per exported stream (bounded cardinality; streams_live counts them all).
  std::vector<StreamSnapshot> snaps;
  for (std::size_t i = 0; i < streams.size() && i < max_labels_; ++i) snaps.push_back(streams[i]->snapshot());
  std::vector<prometheus::MetricFamily> out;
  for (auto& d : defs) {
    prometheus::MetricFamily fam{d.name, d.help, d.type, {}};
    for (auto& snap : snaps) {
      prometheus::ClientMetric m;
      m.label.push_back({"stream", snap.info.stream});
      double v = d.value(snap.stats);
      if (d.type == MetricType::Gauge)
        m.gauge.value = v;
      else
        m.counter.value = v;
      fam.metric.push_back(std::move(m));
    }
    out.push_back(std::move(fam));
  }
  prometheus::MetricFamily live_fam{
      "streamflex_ingest_streams_live", "Streams being published now", MetricType::Gauge, {}};
  prometheus::ClientMetric m;
  m.gauge.value = double(streams.size());
  live_fam.metric.push_back(m);
  out.push_back(std::move(live_fam));
  return out;
}

}  // namespace sf::ingest
