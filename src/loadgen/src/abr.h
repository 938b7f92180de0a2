// Rendition choice for a simulated player with a simulated link (`loadgen --abr`).
// - Link: each viewer has a bandwidth (bits/s); a download of B bytes that the real network
//   delivered in t seconds is counted as taking max(t, 8B / bandwidth), and the viewer waits out
//   the difference before using the media (a bottleneck link in front of the player).
// - Estimate: the download rate of the last `window` media downloads (total bits over total
//   seconds, so a short part weighs by its size).
// - Choice, with hysteresis: down at once to the best rendition that fits when the estimate falls
//   below the current rendition's BANDWIDTH / `down_margin`; up only when the best rendition that
//   fits `up_margin` times over is higher, and at least `hold` downloads after the last switch.
// One instance per viewer, its thread only. Pure arithmetic: unit-tested in abr_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/result.h"

namespace sf::loadgen {

struct AbrSettings {
  std::size_t window = 3;
  double down_margin = 1.0;  // the estimate must stay at least BANDWIDTH / down_margin ... = BANDWIDTH
  double up_margin = 1.5;    // a higher rendition needs estimate >= up_margin * its BANDWIDTH
  std::size_t hold = 3;      // downloads after a switch before switching up
};

// Per-viewer bandwidths: "3M" (every viewer), "1M-8M" (uniform, spread evenly over the viewers),
// "500k,2M,6M" (round robin). Units: none (bit/s), k, M, G. Errors: errc::invalid_argument.
class BandwidthPlan {
 public:
  static Result<BandwidthPlan> parse(std::string_view text);
  // The bandwidth of viewer `i` of `n`, bits per second.
  double of(std::size_t i, std::size_t n) const;
  std::string describe() const;

 private:
  std::vector<double> list_;   // round robin, or
  double low_ = 0, high_ = 0;  // a range
};

class Abr {
 public:
  // `bandwidths`: the renditions' BANDWIDTH, any order; starts on the lowest.
  Abr(std::vector<std::uint64_t> bandwidths, double link_bps, AbrSettings settings = {});

  // Seconds the download must be made to last on the simulated link (>= `seconds`).
  double link_seconds(std::uint64_t bytes, double seconds) const;
  // A media download of `bytes` that took `seconds` on the simulated link.
  void on_download(std::uint64_t bytes, double seconds);
  // The rendition to use next if it differs from current(): the index into the constructor's list.
  std::optional<std::size_t> decide();
  std::size_t current() const { return order_[level_]; }
  void switched();              // the player moved to the rendition decide() named
  double estimate_bps() const;  // 0 before any download
  std::uint64_t ups() const { return ups_; }
  std::uint64_t downs() const { return downs_; }

 private:
  std::vector<std::uint64_t> bandwidths_;
  std::vector<std::size_t> order_;  // indices of bandwidths_, ascending bandwidth
  std::size_t level_ = 0;           // into order_
  std::optional<std::size_t> pending_;
  double link_bps_;
  AbrSettings settings_;
  std::deque<std::pair<double, double>> recent_;  // (bits, seconds)
  std::size_t since_switch_ = 0;
  std::uint64_t ups_ = 0, downs_ = 0;
};

}  // namespace sf::loadgen
