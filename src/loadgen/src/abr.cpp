#include "abr.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <numeric>

namespace sf::loadgen {

namespace {

std::optional<double> parse_rate(std::string_view t) {
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  if (t.empty()) return std::nullopt;
  double mult = 1;
  switch (t.back()) {
    case 'k':
    case 'K':
      mult = 1e3;
      break;
    case 'm':
    case 'M':
      mult = 1e6;
      break;
    case 'g':
    case 'G':
      mult = 1e9;
      break;
    default:
      break;
  }
  if (mult != 1) t.remove_suffix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || !(v > 0)) return std::nullopt;
  return v * mult;
}

}  // namespace

Result<BandwidthPlan> BandwidthPlan::parse(std::string_view text) {
  BandwidthPlan p;
  if (auto dash = text.find('-'); dash != std::string_view::npos) {
    auto lo = parse_rate(text.substr(0, dash));
    auto hi = parse_rate(text.substr(dash + 1));
    if (!lo || !hi || *hi < *lo) return fail(errc::invalid_argument);
    p.low_ = *lo;
    p.high_ = *hi;
    return p;
  }
  while (!text.empty()) {
    auto comma = text.find(',');
    auto r = parse_rate(text.substr(0, comma));
    if (!r) return fail(errc::invalid_argument);
    p.list_.push_back(*r);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (p.list_.empty()) return fail(errc::invalid_argument);
  return p;
}

double BandwidthPlan::of(std::size_t i, std::size_t n) const {
  if (!list_.empty()) return list_[i % list_.size()];
  if (n <= 1) return (low_ + high_) / 2;
  return low_ + (high_ - low_) * static_cast<double>(i) / static_cast<double>(n - 1);
}

std::string BandwidthPlan::describe() const {
  auto mbps = [](double v) { return fmt::format("{:g} Mbit/s", v / 1e6); };
  if (list_.empty()) return fmt::format("{} to {} (spread evenly)", mbps(low_), mbps(high_));
  std::string out;
  for (auto v : list_) out += (out.empty() ? "" : ", ") + mbps(v);
  return list_.size() > 1 ? out + " (round robin)" : out;
}

Abr::Abr(std::vector<std::uint64_t> bandwidths, double link_bps, AbrSettings settings)
    : bandwidths_(std::move(bandwidths)), link_bps_(link_bps), settings_(settings) {
  order_.resize(bandwidths_.size());
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(), [&](auto a, auto b) { return bandwidths_[a] < bandwidths_[b]; });
  if (order_.empty()) order_.push_back(0), bandwidths_.push_back(0);
}

double Abr::link_seconds(std::uint64_t bytes, double seconds) const {
  if (link_bps_ <= 0) return seconds;
  return std::max(seconds, 8.0 * static_cast<double>(bytes) / link_bps_);
}

void Abr::on_download(std::uint64_t bytes, double seconds) {
  recent_.emplace_back(8.0 * static_cast<double>(bytes), std::max(seconds, 1e-6));
  while (recent_.size() > std::max<std::size_t>(1, settings_.window)) recent_.pop_front();
  ++since_switch_;
}

double Abr::estimate_bps() const {
  double bits = 0, secs = 0;
  for (auto& [b, s] : recent_) bits += b, secs += s;
  return secs > 0 ? bits / secs : 0;
}

std::optional<std::size_t> Abr::decide() {
  pending_.reset();
  if (recent_.size() < std::min<std::size_t>(settings_.window, 2)) return std::nullopt;
  double est = estimate_bps();
  auto fits = [&](double margin) {
    std::size_t best = 0;
    for (std::size_t l = 0; l < order_.size(); ++l)
      if (static_cast<double>(bandwidths_[order_[l]]) * margin <= est) best = l;
    return best;
  };
  double current_bw = static_cast<double>(bandwidths_[order_[level_]]);
  if (level_ > 0 && est * settings_.down_margin < current_bw) {
    pending_ = fits(1.0);
  } else if (since_switch_ >= settings_.hold) {
    auto up = fits(settings_.up_margin);
    if (up > level_) pending_ = up;
  }
  if (pending_ && *pending_ == level_) pending_.reset();
  if (!pending_) return std::nullopt;
  return order_[*pending_];
}

void Abr::switched() {
  if (!pending_) return;
  (*pending_ > level_ ? ups_ : downs_)++;
  level_ = *pending_;
  pending_.reset();
  since_switch_ = 0;
  // Rates measured on the old rendition still describe the link: keep them.
}

}  // namespace sf::loadgen
