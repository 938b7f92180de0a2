#include "live_stream.h"

namespace sf::ingest {

void LiveStream::set_track(const media::TrackConfig& t) {
  std::lock_guard lock(mu_);
  (t.type == media::MediaType::video ? video_ : audio_) = t;
}

void LiveStream::count_frame(const media::MediaFrame& f, std::chrono::steady_clock::time_point now) {
  constexpr auto relaxed = std::memory_order_relaxed;
  bytes_.fetch_add(f.data.size(), relaxed);
  window_bytes_ += f.data.size();
  if (f.type == media::MediaType::video) {
    video_frames_.fetch_add(1, relaxed);
    ++window_video_frames_;
    if (f.keyframe) {
      keyframes_.fetch_add(1, relaxed);
      if (last_keyframe_dts_ >= 0)
        keyframe_interval_.store(static_cast<double>(f.dts - last_keyframe_dts_) / media::kVideoTimescale, relaxed);
      last_keyframe_dts_ = f.dts;
    }
  } else {
    audio_frames_.fetch_add(1, relaxed);
  }
  if (window_start_ == std::chrono::steady_clock::time_point{}) window_start_ = now;
  auto elapsed = std::chrono::duration<double>(now - window_start_).count();
  if (elapsed >= 1.0) {
    bitrate_.store(static_cast<double>(window_bytes_) * 8 / elapsed, relaxed);
    fps_.store(static_cast<double>(window_video_frames_) / elapsed, relaxed);
    window_start_ = now;
    window_bytes_ = 0;
    window_video_frames_ = 0;
  }
}

StreamSnapshot LiveStream::snapshot() const {
  constexpr auto relaxed = std::memory_order_relaxed;
  StreamSnapshot s;
  {
    std::lock_guard lock(mu_);
    s.info = info_;
    s.video = video_;
    s.audio = audio_;
  }
  s.stats.bitrate_bps = bitrate_.load(relaxed);
  s.stats.fps = fps_.load(relaxed);
  s.stats.keyframe_interval_s = keyframe_interval_.load(relaxed);
  s.stats.bytes = bytes_.load(relaxed);
  s.stats.video_frames = video_frames_.load(relaxed);
  s.stats.audio_frames = audio_frames_.load(relaxed);
  s.stats.keyframes = keyframes_.load(relaxed);
  s.stats.dropped_frames = dropped_.load(relaxed);
  s.stats.late_frames = late_.load(relaxed);
  s.stats.timestamp_jumps = jumps_.load(relaxed);
  return s;
}

}  // namespace sf::ingest
