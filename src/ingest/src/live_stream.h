// A publish in progress as the rest of the process sees it: identity, track configurations and
// statistics. The session (on its I/O thread) is the only writer; readers on other threads see
// the counters through relaxed atomics and the track configurations under a mutex (they change
// only at a sequence header).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>

#include "sf/ingest/ingest.h"

namespace sf::ingest {

class LiveStream {
 public:
  explicit LiveStream(PublishInfo info) : info_(std::move(info)) {}

  const PublishInfo& info() const { return info_; }
  void set_encoder(std::string encoder) {
    std::lock_guard lock(mu_);
    info_.encoder = std::move(encoder);
  }
  void set_track(const media::TrackConfig& t);

  // Frame accounting, I/O thread. `now` drives the one-second rate window.
  void count_frame(const media::MediaFrame& f, std::chrono::steady_clock::time_point now);
  void count_dropped() { dropped_.fetch_add(1, std::memory_order_relaxed); }
  void count_late() {
    late_.fetch_add(1, std::memory_order_relaxed);
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
  void count_jump() { jumps_.fetch_add(1, std::memory_order_relaxed); }

  StreamSnapshot snapshot() const;

  // Ends the session that owns this stream (posted to its I/O context); set by the session.
  std::function<void(std::string_view reason)> stop;

 private:
  mutable std::mutex mu_;  // guards info_.encoder and the track configs
  PublishInfo info_;
  std::optional<media::TrackConfig> video_, audio_;

  std::atomic<std::uint64_t> bytes_{0}, video_frames_{0}, audio_frames_{0}, keyframes_{0}, dropped_{0}, late_{0},
      jumps_{0};
  std::atomic<double> bitrate_{0}, fps_{0}, keyframe_interval_{0};

  // Window state, I/O thread only.
  std::chrono::steady_clock::time_point window_start_{};
  std::uint64_t window_bytes_ = 0;
  std::uint64_t window_video_frames_ = 0;
  std::int64_t last_keyframe_dts_ = -1;
};

}  // namespace sf::ingest
