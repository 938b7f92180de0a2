// AMF0 values (Adobe AMF0 spec) as used by RTMP commands and metadata: decoding with bounds on
// depth and counts, and encoding. Values own their data (commands are small); any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"

namespace sf::rtmp::amf0 {

struct Value;
using Object = std::vector<std::pair<std::string, Value>>;  // keeps wire order
using Array = std::vector<Value>;
struct Null {};
struct Undefined {};
struct Date {
  double ms = 0;
  std::int16_t tz = 0;
};

struct Value {
  // Object and EcmaArray both decode to Object; `ecma` remembers which marker it came with.
  std::variant<Null, Undefined, double, bool, std::string, Object, Array, Date> v = Null{};
  bool ecma = false;

  Value() = default;
  Value(double d) : v(d) {}
  Value(int i) : v(static_cast<double>(i)) {}
  Value(bool b) : v(b) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(Object o) : v(std::move(o)) {}
  Value(Array a) : v(std::move(a)) {}
  static Value null() { return Value(); }

  bool is_null() const { return std::holds_alternative<Null>(v) || std::holds_alternative<Undefined>(v); }
  const std::string* string() const { return std::get_if<std::string>(&v); }
  const double* number() const { return std::get_if<double>(&v); }
  const Object* object() const { return std::get_if<Object>(&v); }
  // Member lookup on an object (first match); nullptr if not an object or absent.
  const Value* get(std::string_view key) const;
};

struct Limits {
  std::size_t max_depth = 16;
  std::size_t max_items = 4096;  // total values in one decode call
};

// Decodes consecutive values until the input ends. errc::truncated / errc::malformed /
// errc::limit_exceeded / errc::unsupported (AMF3 switch, references to unknown objects).
Result<std::vector<Value>> decode(ByteView in, Limits limits = {});

void encode(const Value& value, std::vector<std::byte>& out);
inline void encode_all(std::initializer_list<Value> values, std::vector<std::byte>& out) {
  for (const auto& v : values) encode(v, out);
}

}  // namespace sf::rtmp::amf0
