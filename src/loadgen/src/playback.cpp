#include "playback.h"

#include <algorithm>

namespace sf::loadgen {

Playback::Playback(std::size_t tracks, double rebuffer_threshold)
    : tracks_(std::clamp<std::size_t>(tracks, 1, kMaxTracks)), rebuffer_threshold_(rebuffer_threshold) {}

void Playback::set_start(double pdt, double start_threshold) {
  position_ = pdt;
  start_threshold_ = start_threshold;
}

double Playback::buffer_end() const {
  double end = INFINITY;
  for (std::size_t t = 0; t < tracks_; ++t) {
    if (!have_[t]) return NAN;
    end = std::min(end, end_[t]);
  }
  return end;
}

double Playback::buffered() const {
  double end = buffer_end();
  if (std::isnan(end) || std::isnan(position_)) return 0;
  return std::max(0.0, end - position_);
}

void Playback::advance(double now) {
  if (!std::isnan(last_) && playing_) {
    double end = buffer_end();
    double next = position_ + (now - last_);
    if (next > end) {
      // Ran dry at the moment the position reached the end of the buffer, not at `now`.
      stall_since_ = now - (next - end);
      position_ = end;
      playing_ = false;
      ++stalls_;
    } else {
      position_ = next;
    }
  }
  last_ = now;
}

void Playback::on_media(std::size_t t, double end_pdt, double now) {
  if (t >= tracks_) return;
  advance(now);
  end_[t] = have_[t] ? std::max(end_[t], end_pdt) : end_pdt;
  have_[t] = true;
  if (playing_ || std::isnan(position_)) return;
  double need = started_ ? std::min(rebuffer_threshold_, start_threshold_) : start_threshold_;
  if (buffered() + 1e-6 < need) return;
  playing_ = true;
  if (!started_) {
    started_ = true;
    started_at_ = now;
  } else {
    stall_seconds_ += now - stall_since_;
  }
}

}  // namespace sf::loadgen
