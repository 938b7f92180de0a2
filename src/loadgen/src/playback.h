// A simulated player's buffer. Media time is PROGRAM-DATE-TIME (seconds since the epoch), so the
// distance between the playback position and the wall clock is the viewer's latency behind live.
// Each followed rendition (video, audio) is a track; the buffer ends where the shortest track ends.
// Playback starts once `start_threshold` seconds are buffered ahead of the start position and then
// consumes media in real time; when the position reaches the end of the buffer the player stalls,
// and resumes once `rebuffer_threshold` seconds are buffered again.
// One instance per viewer, used from the viewer's thread only. Times `now` are seconds on a
// monotonic clock and must not go back.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>

namespace sf::loadgen {

class Playback {
 public:
  static constexpr std::size_t kMaxTracks = 2;

  Playback(std::size_t tracks, double rebuffer_threshold);

  // Where playback will begin, and how much must be buffered before it does.
  void set_start(double pdt, double start_threshold);
  bool has_start() const { return !std::isnan(position_); }

  // Track `t` now holds media up to `end_pdt` (its downloads are contiguous).
  void on_media(std::size_t t, double end_pdt, double now);
  // Plays on to `now` (a stall is noticed, and timed from the moment the buffer ran dry).
  void advance(double now);

  bool started() const { return started_; }
  bool playing() const { return playing_; }
  double started_at() const { return started_at_; }
  double position() const { return position_; }  // media time, as of the last advance()
  double buffered() const;                       // seconds ahead of the position
  int stalls() const { return stalls_; }
  // Time spent stalled, including a stall still going on at `now`.
  double stall_seconds(double now) const { return stall_seconds_ + (stalled() ? now - stall_since_ : 0); }

 private:
  bool stalled() const { return started_ && !playing_; }
  double buffer_end() const;

  std::size_t tracks_;
  double rebuffer_threshold_;
  double start_threshold_ = 0;
  std::array<double, kMaxTracks> end_{};
  std::array<bool, kMaxTracks> have_{};
  double position_ = NAN;
  double last_ = NAN;
  bool started_ = false;
  bool playing_ = false;
  double started_at_ = NAN;
  double stall_since_ = 0;
  double stall_seconds_ = 0;
  int stalls_ = 0;
};

}  // namespace sf::loadgen
