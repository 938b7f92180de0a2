// Writes ISO BMFF boxes (ISO/IEC 14496-12 §4.2) big-endian into a fixed buffer. Without a buffer
// it only counts, so a caller runs its writing function twice: once to size the one allocation,
// once to fill it (see build()). Box sizes are patched when a box ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "sf/core/bytes.h"
#include "sf/core/result.h"

namespace sf::cmaf {

class BoxWriter {
 public:
  BoxWriter() = default;  // counting only
  explicit BoxWriter(std::span<std::byte> out) : out_(out.data()), capacity_(out.size()) {}

  std::size_t size() const { return pos_; }

  void u8(std::uint8_t v) { put(&v, 1); }
  void u16(std::uint16_t v) { uint_be(v, 2); }
  void u24(std::uint32_t v) { uint_be(v, 3); }
  void u32(std::uint32_t v) { uint_be(v, 4); }
  void u64(std::uint64_t v) { uint_be(v, 8); }
  void s32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
  void fourcc(std::string_view code) {
    SF_ASSERT(code.size() == 4);
    put(code.data(), 4);
  }
  void bytes(ByteView b) { put(b.data(), b.size()); }
  void zeros(std::size_t n) {
    if (out_) {
      SF_CHECK(pos_ + n <= capacity_);
      std::memset(out_ + pos_, 0, n);
    }
    pos_ += n;
  }

  // Starts a box; returns its offset for end().
  std::size_t begin(std::string_view type) {
    const std::size_t at = pos_;
    u32(0);
    fourcc(type);
    return at;
  }
  std::size_t begin_full(std::string_view type, std::uint8_t version, std::uint32_t flags) {
    const std::size_t at = begin(type);
    u8(version);
    u24(flags);
    return at;
  }
  void end(std::size_t at) { patch_u32(at, static_cast<std::uint32_t>(pos_ - at)); }
  void patch_u32(std::size_t at, std::uint32_t v) {
    if (!out_) return;
    SF_CHECK(at + 4 <= pos_);
    for (int i = 0; i < 4; ++i) out_[at + i] = static_cast<std::byte>(v >> (24 - 8 * i));
  }

 private:
  void uint_be(std::uint64_t v, int n) {
    std::byte b[8];
    for (int i = 0; i < n; ++i) b[i] = static_cast<std::byte>(v >> (8 * (n - 1 - i)));
    put(b, n);
  }
  void put(const void* p, std::size_t n) {
    if (out_) {
      SF_CHECK(pos_ + n <= capacity_);
      if (n) std::memcpy(out_ + pos_, p, n);
    }
    pos_ += n;
  }

  std::byte* out_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t pos_ = 0;
};

// Runs `write(BoxWriter&)` once to count and once into a block of exactly that size.
template <class Write>
Bytes build(Write&& write) {
  BoxWriter counter;
  write(counter);
  MutableBytes block(counter.size());
  BoxWriter writer(block.span());
  write(writer);
  SF_CHECK(writer.size() == block.size());
  return Bytes::freeze(std::move(block));
}

}  // namespace sf::cmaf
