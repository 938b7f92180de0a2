// Turns a publisher's 32-bit RTMP millisecond timestamps into one 64-bit, monotonic timeline per
// stream. Wraps are unwrapped per track; a jump larger than the limit (encoder restart, clock
// reset), forward or back, rebases every track by one shared offset, so audio and video stay in
// sync; a timestamp that goes backwards by less than the limit is late. In `discontinuity` mode
// (ingest.timestamp_jump) each jump also starts a new epoch, which every later result of every
// track carries (MediaFrame::epoch: the packager starts an EXT-X-DISCONTINUITY and a DASH Period
// there); in `rebase` mode the epoch stays 0. One per publish, I/O thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace sf::ingest {

class Timeline {
 public:
  enum class Track { video = 0, audio = 1 };
  enum class Verdict { ok, late, jumped };
  enum class JumpMode { discontinuity, rebase };
  struct Result {
    Verdict verdict = Verdict::ok;
    std::int64_t ms = 0;      // the frame's time on the output timeline (valid unless late)
    std::uint32_t epoch = 0;  // jumps signalled as discontinuities so far (valid unless late)
  };

  explicit Timeline(std::chrono::milliseconds max_jump, JumpMode mode = JumpMode::rebase)
      : max_jump_(max_jump.count()), mode_(mode) {}
  Result map(Track track, std::uint32_t wire_ms);

 private:
  struct State {
    bool seen = false;
    std::uint32_t last_wire = 0;
    std::int64_t unwrapped = 0;  // last input time, 64-bit
    std::int64_t last_out = 0;
    std::int64_t last_step = 0;  // duration of the last frame, to continue after a jump
  };
  std::int64_t max_jump_;
  JumpMode mode_;
  std::int64_t offset_ = 0;
  std::uint32_t epoch_ = 0;
  std::array<State, 2> tracks_{};
};

}  // namespace sf::ingest
