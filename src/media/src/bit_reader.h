// MSB-first bit reader for codec headers (H.264/HEVC SPS, AV1 sequence header, AAC
// AudioSpecificConfig). Reads past the end return 0 and latch a truncation flag, so a parser can
// read a run of fields and check error() once; nothing outside the input is ever touched.
// Borrows its input; one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"

namespace sf::media {

class BitReader {
 public:
  explicit BitReader(ByteView in) : in_(in) {}

  // n <= 32.
  std::uint32_t bits(int n) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 1) | bit();
    return v;
  }
  bool flag() { return bit() != 0; }
  void skip(std::size_t n) {
    if (n > remaining_bits()) {
      pos_ = in_.size() * 8;
      truncated_ = true;
      return;
    }
    pos_ += n;
  }

  // H.264 9.1 / H.265 9.2 ue(v). More than 31 leading zeros cannot encode a 32-bit value.
  std::uint32_t ue() {
    int zeros = 0;
    while (bit() == 0) {
      if (truncated_) return 0;
      if (++zeros > 31) {
        malformed_ = true;
        return 0;
      }
    }
    return ((std::uint32_t{1} << zeros) - 1) + bits(zeros);
  }
  // se(v): 1, 2, 3, 4 ... map to 1, -1, 2, -2 ...
  std::int32_t se() {
    const std::int64_t k = ue();
    return static_cast<std::int32_t>((k & 1) ? (k + 1) / 2 : -(k / 2));
  }

  std::size_t remaining_bits() const { return in_.size() * 8 - pos_; }
  // errc::truncated if any read went past the end, errc::malformed if a value could not be
  // represented; empty while every read succeeded.
  std::error_code error() const {
    if (truncated_) return make_error_code(errc::truncated);
    if (malformed_) return make_error_code(errc::malformed);
    return {};
  }

 private:
  std::uint32_t bit() {
    if (pos_ >= in_.size() * 8) {
      truncated_ = true;
      return 0;
    }
    const auto byte = std::to_integer<std::uint32_t>(in_[pos_ / 8]);
    const std::uint32_t b = (byte >> (7 - pos_ % 8)) & 1;
    ++pos_;
    return b;
  }

  ByteView in_;
  std::size_t pos_ = 0;
  bool truncated_ = false;
  bool malformed_ = false;
};

// NAL unit payload to RBSP: drops each emulation_prevention_three_byte (H.264 7.4.1, H.265 7.4.2),
// the 0x03 in 00 00 03.
inline std::vector<std::byte> nal_to_rbsp(ByteView nal) {
  std::vector<std::byte> out;
  out.reserve(nal.size());
  int zeros = 0;
  for (std::byte b : nal) {
    if (zeros >= 2 && b == std::byte{0x03}) {
      zeros = 0;
      continue;
    }
    zeros = (b == std::byte{0}) ? zeros + 1 : 0;
    out.push_back(b);
  }
  return out;
}

}  // namespace sf::media
