#include "sf/rtmp/amf0.h"

#include <bit>
#include <cstring>

#include "sf/core/byte_reader.h"

namespace sf::rtmp::amf0 {
namespace {

// AMF0 spec 2.1 type markers.
enum Marker : std::uint8_t {
  kNumber = 0x00,
  kBoolean = 0x01,
  kString = 0x02,
  kObject = 0x03,
  kMovieClip = 0x04,
  kNull = 0x05,
  kUndefined = 0x06,
  kReference = 0x07,
  kEcmaArray = 0x08,
  kObjectEnd = 0x09,
  kStrictArray = 0x0A,
  kDate = 0x0B,
  kLongString = 0x0C,
  kUnsupported = 0x0D,
  kRecordSet = 0x0E,
  kXmlDocument = 0x0F,
  kTypedObject = 0x10,
  kAvmPlusObject = 0x11,  // switch to AMF3
};

class Decoder {
 public:
  Decoder(ByteView in, Limits limits) : in_(in), limits_(limits) {}

  bool done() const { return in_.empty(); }

  Result<Value> value(std::size_t depth) {
    if (++items_ > limits_.max_items) return fail(errc::limit_exceeded);
    auto marker = in_.u8();
    if (!marker) return std::unexpected(marker.error());
    switch (*marker) {
      case kNumber:
        return number();
      case kBoolean: {
        auto b = in_.u8();
        if (!b) return std::unexpected(b.error());
        return Value(*b != 0);
      }
      case kString:
        return string(2);
      case kLongString:
        return string(4);
      case kObject:
      case kEcmaArray: {
        if (depth >= limits_.max_depth) return fail(errc::limit_exceeded);
        // The ECMA array count is only a hint (encoders get it wrong); the end marker decides.
        if (*marker == kEcmaArray) {
          if (auto hint = in_.skip(4); !hint) return std::unexpected(hint.error());
        }
        auto members = object(depth + 1);
        if (!members) return std::unexpected(members.error());
        Value v(std::move(*members));
        v.ecma = *marker == kEcmaArray;
        return v;
      }
      case kNull:
        return Value::null();
      case kUndefined: {
        Value v;
        v.v = Undefined{};
        return v;
      }
      case kStrictArray:
        if (depth >= limits_.max_depth) return fail(errc::limit_exceeded);
        return array(depth + 1);
      case kDate: {
        auto ms = number();
        if (!ms) return ms;
        auto tz = in_.u16();
        if (!tz) return std::unexpected(tz.error());
        Value v;
        v.v = Date{*std::get_if<double>(&ms->v), static_cast<std::int16_t>(*tz)};
        return v;
      }
      case kReference:  // needs a table of earlier objects; not sent by encoders we know
      case kMovieClip:  // reserved
      case kUnsupported:
      case kRecordSet:  // reserved
      case kXmlDocument:
      case kTypedObject:
      case kAvmPlusObject:
        return fail(errc::unsupported);
      default:
        return fail(errc::malformed);
    }
  }

 private:
  Result<Value> number() {
    auto bits = in_.u64();
    if (!bits) return std::unexpected(bits.error());
    return Value(std::bit_cast<double>(*bits));
  }

  Result<std::string> utf8(std::size_t length_bytes) {
    std::uint32_t len = 0;
    if (length_bytes == 2) {
      auto l = in_.u16();
      if (!l) return std::unexpected(l.error());
      len = *l;
    } else {
      auto l = in_.u32();
      if (!l) return std::unexpected(l.error());
      len = *l;
    }
    auto chars = in_.bytes(len);  // checked against what is left before anything is copied
    if (!chars) return std::unexpected(chars.error());
    return std::string(as_chars(*chars));
  }

  Result<Value> string(std::size_t length_bytes) {
    auto s = utf8(length_bytes);
    if (!s) return std::unexpected(s.error());
    return Value(std::move(*s));
  }

  // Properties until an empty name followed by the object-end marker (AMF0 2.5).
  Result<Object> object(std::size_t depth) {
    Object members;
    for (;;) {
      auto key = utf8(2);
      if (!key) return std::unexpected(key.error());
      if (key->empty()) {
        if (in_.empty()) return fail(errc::truncated);
        if (std::to_integer<std::uint8_t>(in_.rest()[0]) == kObjectEnd) {
          (void)in_.skip(1);
          return members;
        }
      }
      auto v = value(depth);
      if (!v) return std::unexpected(v.error());
      members.emplace_back(std::move(*key), std::move(*v));
    }
  }

  Result<Value> array(std::size_t depth) {
    auto count = in_.u32();
    if (!count) return std::unexpected(count.error());
    // Every value takes at least one byte: check the count before reserving for it.
    if (*count > limits_.max_items - items_) return fail(errc::limit_exceeded);
    if (*count > in_.remaining()) return fail(errc::truncated);
    Array values;
    values.reserve(*count);
    for (std::uint32_t k = 0; k < *count; ++k) {
      auto v = value(depth);
      if (!v) return std::unexpected(v.error());
      values.push_back(std::move(*v));
    }
    return Value(std::move(values));
  }

  ByteReader in_;
  Limits limits_;
  std::size_t items_ = 0;
};

void put_u8(std::uint8_t v, std::vector<std::byte>& out) {
  out.push_back(std::byte{v});
}
void put_u16(std::uint16_t v, std::vector<std::byte>& out) {
  put_u8(static_cast<std::uint8_t>(v >> 8), out);
  put_u8(static_cast<std::uint8_t>(v), out);
}
void put_u32(std::uint32_t v, std::vector<std::byte>& out) {
  put_u16(static_cast<std::uint16_t>(v >> 16), out);
  put_u16(static_cast<std::uint16_t>(v), out);
}
void put_number(double d, std::vector<std::byte>& out) {
  const auto bits = std::bit_cast<std::uint64_t>(d);
  put_u32(static_cast<std::uint32_t>(bits >> 32), out);
  put_u32(static_cast<std::uint32_t>(bits), out);
}
void put_chars(std::string_view s, std::vector<std::byte>& out) {
  const auto b = as_bytes(s);
  out.insert(out.end(), b.begin(), b.end());
}
void put_key(std::string_view key, std::vector<std::byte>& out) {
  SF_CHECK(key.size() <= 0xFFFF);  // property names have a 16-bit length
  put_u16(static_cast<std::uint16_t>(key.size()), out);
  put_chars(key, out);
}

struct Encoder {
  const Value& value;
  std::vector<std::byte>& out;

  void operator()(Null) const { put_u8(kNull, out); }
  void operator()(Undefined) const { put_u8(kUndefined, out); }
  void operator()(double d) const {
    put_u8(kNumber, out);
    put_number(d, out);
  }
  void operator()(bool b) const {
    put_u8(kBoolean, out);
    put_u8(b ? 1 : 0, out);
  }
  void operator()(const std::string& s) const {
    if (s.size() <= 0xFFFF) {
      put_u8(kString, out);
      put_u16(static_cast<std::uint16_t>(s.size()), out);
    } else {
      SF_CHECK(s.size() <= 0xFFFFFFFF);
      put_u8(kLongString, out);
      put_u32(static_cast<std::uint32_t>(s.size()), out);
    }
    put_chars(s, out);
  }
  void operator()(const Object& o) const {
    if (value.ecma) {
      put_u8(kEcmaArray, out);
      put_u32(static_cast<std::uint32_t>(o.size()), out);
    } else {
      put_u8(kObject, out);
    }
    for (const auto& [key, member] : o) {
      put_key(key, out);
      encode(member, out);
    }
    put_u16(0, out);
    put_u8(kObjectEnd, out);
  }
  void operator()(const Array& a) const {
    SF_CHECK(a.size() <= 0xFFFFFFFF);
    put_u8(kStrictArray, out);
    put_u32(static_cast<std::uint32_t>(a.size()), out);
    for (const auto& element : a) encode(element, out);
  }
  void operator()(const Date& d) const {
    put_u8(kDate, out);
    put_number(d.ms, out);
    put_u16(static_cast<std::uint16_t>(d.tz), out);
  }
};

}  // namespace

const Value* Value::get(std::string_view key) const {
  const Object* o = object();
  if (o == nullptr) return nullptr;
  for (const auto& [name, member] : *o) {
    if (name == key) return &member;
  }
  return nullptr;
}

Result<std::vector<Value>> decode(ByteView in, Limits limits) {
  Decoder decoder(in, limits);
  std::vector<Value> values;
  while (!decoder.done()) {
    auto v = decoder.value(0);
    if (!v) return std::unexpected(v.error());
    values.push_back(std::move(*v));
  }
  return values;
}

void encode(const Value& value, std::vector<std::byte>& out) {
  std::visit(Encoder{value, out}, value.v);
}

}  // namespace sf::rtmp::amf0
