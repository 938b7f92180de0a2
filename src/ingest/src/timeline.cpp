#include "timeline.h"

namespace sf::ingest {

Timeline::Result Timeline::map(Track track, std::uint32_t wire_ms) {
  auto& s = tracks_[static_cast<int>(track)];
  if (!s.seen) {
    s.seen = true;
    s.last_wire = wire_ms;
    s.unwrapped = wire_ms;
    s.last_out = s.unwrapped + offset_;
    return {Verdict::ok, s.last_out, epoch_};
  }
  // RTMP timestamps are u32 ms and wrap every ~49.7 days: the signed 32-bit difference is the step.
  auto step = static_cast<std::int64_t>(static_cast<std::int32_t>(wire_ms - s.last_wire));
  std::int64_t unwrapped = s.unwrapped + step;
  std::int64_t out = unwrapped + offset_;
  std::int64_t delta = out - s.last_out;
  if (delta < 0 && delta >= -max_jump_) return {Verdict::late, 0};  // state untouched
  s.last_wire = wire_ms;
  s.unwrapped = unwrapped;
  if (delta > max_jump_ || delta < -max_jump_) {
    // Continue where this track left off, one frame later; the other track follows through the
    // shared offset, since its input jumped by the same amount.
    std::int64_t continue_at = s.last_out + (s.last_step > 0 ? s.last_step : 1);
    offset_ += continue_at - out;
    s.last_step = continue_at - s.last_out;
    s.last_out = continue_at;
    // The other track's jump, when it comes, is absorbed by the offset: one epoch per jump.
    if (mode_ == JumpMode::discontinuity) ++epoch_;
    return {Verdict::jumped, continue_at, epoch_};
  }
  if (delta > 0) s.last_step = delta;
  s.last_out = out;
  return {Verdict::ok, out, epoch_};
}

}  // namespace sf::ingest
