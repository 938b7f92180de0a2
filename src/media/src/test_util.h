// Helpers shared by the media unit tests: hex literals to Bytes, and an MSB-first bit writer for
// crafting parameter sets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/bytes.h"

namespace sf::media::testing {

inline std::vector<std::byte> hex_vector(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<std::byte> out;
  int high = -1;
  for (char c : hex) {
    const int n = nibble(c);
    if (n < 0) continue;  // spaces and separators
    if (high < 0) {
      high = n;
    } else {
      out.push_back(static_cast<std::byte>(high << 4 | n));
      high = -1;
    }
  }
  return out;
}

inline Bytes hex(std::string_view text) {
  const auto v = hex_vector(text);
  return Bytes::copy_of(v);
}

inline Bytes concat(std::initializer_list<ByteView> parts) {
  std::vector<std::byte> v;
  for (ByteView p : parts) v.insert(v.end(), p.begin(), p.end());
  return Bytes::copy_of(v);
}

class BitWriter {
 public:
  BitWriter& bits(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) bit((v >> i) & 1);
    return *this;
  }
  BitWriter& ue(std::uint32_t v) {
    const std::uint64_t x = std::uint64_t{v} + 1;
    int len = 0;
    while ((x >> len) > 1) ++len;
    bits(0, len);
    return bits(x, len + 1);
  }
  BitWriter& se(std::int32_t v) { return ue(v > 0 ? 2 * static_cast<std::uint32_t>(v) - 1 : -2 * v); }
  // rbsp_trailing_bits()
  std::vector<std::byte> finish() {
    bit(1);
    while (count_ % 8 != 0) bit(0);
    return out_;
  }

 private:
  void bit(std::uint64_t b) {
    if (count_ % 8 == 0) out_.push_back(std::byte{0});
    if (b) out_.back() |= static_cast<std::byte>(0x80 >> (count_ % 8));
    ++count_;
  }
  std::vector<std::byte> out_;
  std::size_t count_ = 0;
};

// RBSP to NAL payload: inserts emulation_prevention_three_byte after 00 00 before 00..03.
inline std::vector<std::byte> escape(const std::vector<std::byte>& rbsp) {
  std::vector<std::byte> out;
  int zeros = 0;
  for (std::byte b : rbsp) {
    if (zeros >= 2 && std::to_integer<int>(b) <= 3) {
      out.push_back(std::byte{3});
      zeros = 0;
    }
    zeros = b == std::byte{0} ? zeros + 1 : 0;
    out.push_back(b);
  }
  return out;
}

}  // namespace sf::media::testing
