// Bounds-checked big-endian reader over a ByteView. Every read reports truncation instead of
// reading past the end; parsers built on it never touch memory outside their input.
#pragma once

#include <cstdint>
#include <optional>

#include "sf/core/bytes.h"
#include "sf/core/result.h"

namespace sf {

class ByteReader {
 public:
  explicit ByteReader(ByteView in) : in_(in) {}

  std::size_t remaining() const { return in_.size() - pos_; }
  std::size_t position() const { return pos_; }
  bool empty() const { return remaining() == 0; }
  ByteView rest() const { return in_.subspan(pos_); }

  Result<std::uint8_t> u8() { return uint_be<std::uint8_t>(1); }
  Result<std::uint16_t> u16() { return uint_be<std::uint16_t>(2); }
  Result<std::uint32_t> u24() { return uint_be<std::uint32_t>(3); }
  Result<std::uint32_t> u32() { return uint_be<std::uint32_t>(4); }
  Result<std::uint64_t> u64() { return uint_be<std::uint64_t>(8); }
  Result<std::int32_t> s24() {
    auto v = u24();
    if (!v) return std::unexpected(v.error());
    return static_cast<std::int32_t>(*v << 8) >> 8;
  }
  Result<ByteView> bytes(std::size_t n) {
    if (remaining() < n) return fail(errc::truncated);
    auto v = in_.subspan(pos_, n);
    pos_ += n;
    return v;
  }
  Result<void> skip(std::size_t n) {
    if (remaining() < n) return fail(errc::truncated);
    pos_ += n;
    return {};
  }

 private:
  template <class T>
  Result<T> uint_be(std::size_t n) {
    if (remaining() < n) return fail(errc::truncated);
    T v = 0;
    for (std::size_t i = 0; i < n; ++i) v = static_cast<T>((v << 8) | std::to_integer<T>(in_[pos_ + i]));
    pos_ += n;
    return v;
  }

  ByteView in_;
  std::size_t pos_ = 0;
};

}  // namespace sf
