// Byte views and shared immutable byte buffers.
// ByteView borrows; Bytes owns a reference to an immutable block and can hand out slices of it
// without copying. Bytes may be read from any thread once built; the block is never written after
// it was frozen with Bytes::adopt() or MutableBytes::freeze().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace sf {

using ByteView = std::span<const std::byte>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// A block being filled (for example an RTMP message being reassembled from chunks).
class MutableBytes {
 public:
  MutableBytes() = default;
  explicit MutableBytes(std::size_t size) : block_(std::make_shared_for_overwrite<std::byte[]>(size)), size_(size) {}
  std::byte* data() { return block_.get(); }
  std::size_t size() const { return size_; }
  std::span<std::byte> span() { return {block_.get(), size_}; }

 private:
  friend class Bytes;
  std::shared_ptr<std::byte[]> block_;
  std::size_t size_ = 0;
};

class Bytes {
 public:
  Bytes() = default;
  // Takes the block; the MutableBytes is left empty. No copy.
  static Bytes freeze(MutableBytes&& m) {
    Bytes b;
    b.block_ = std::move(m.block_);
    b.data_ = b.block_.get();
    b.size_ = m.size_;
    m.size_ = 0;
    return b;
  }
  // Takes a string's buffer (an HTTP body, say) as the block, without copying it.
  static Bytes adopt(std::string&& s) {
    auto holder = std::make_shared<std::string>(std::move(s));
    Bytes b;
    b.data_ = reinterpret_cast<const std::byte*>(holder->data());
    b.size_ = holder->size();
    b.block_ = std::shared_ptr<const std::byte[]>(holder, b.data_);
    return b;
  }
  // The only copying constructor: explicit, for small control data and tests.
  static Bytes copy_of(ByteView v) {
    MutableBytes m(v.size());
    if (!v.empty()) std::memcpy(m.data(), v.data(), v.size());
    return freeze(std::move(m));
  }

  // A slice sharing this block. offset + len must lie inside this view.
  Bytes share(std::size_t offset, std::size_t len) const {
    Bytes b;
    b.block_ = block_;
    b.data_ = data_ + offset;
    b.size_ = len;
    return b;
  }
  Bytes share_from(std::size_t offset) const { return share(offset, size_ - offset); }

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  ByteView view() const { return {data_, size_}; }
  operator ByteView() const { return view(); }
  long use_count() const { return block_.use_count(); }

 private:
  std::shared_ptr<const std::byte[]> block_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace sf
