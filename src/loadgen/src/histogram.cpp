#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace sf::loadgen {

std::size_t Histogram::bucket_of(std::uint64_t v) {
  if (v < static_cast<std::uint64_t>(kLinear)) return static_cast<std::size_t>(v);
  int e = 63 - std::countl_zero(v);  // v's leading bit, >= 7
  std::uint64_t sub = (v >> (e - kSubBits)) & ((1u << kSubBits) - 1);
  return static_cast<std::size_t>(kLinear + (e - kSubBits - 1) * (1 << kSubBits) + static_cast<int>(sub));
}

double Histogram::middle_of(std::size_t b) {
  if (b < static_cast<std::size_t>(kLinear)) return static_cast<double>(b);
  std::size_t k = b - kLinear;
  int e = static_cast<int>(k >> kSubBits) + kSubBits + 1;
  double sub = static_cast<double>(k & ((1u << kSubBits) - 1));
  double width = std::ldexp(1.0, e - kSubBits);
  return (64.0 + sub) * width + width / 2;
}

void Histogram::add_us(std::uint64_t us) {
  ++buckets_[bucket_of(us)];
  ++count_;
  sum_ += us;
  max_ = std::max(max_, us);
}

void Histogram::merge(const Histogram& other) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

double Histogram::quantile_us(double q) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_)));
  rank = std::max<std::uint64_t>(rank, 1);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(middle_of(i), static_cast<double>(max_));
  }
  return static_cast<double>(max_);
}

}  // namespace sf::loadgen
