// Structural equality of AMF0 values for tests and fuzz targets: numbers compare bit for bit (so
// NaN equals itself and -0 differs from 0), objects in wire order, the ECMA flag included.
#pragma once

#include <bit>
#include <cstdint>

#include "sf/rtmp/amf0.h"

namespace sf::rtmp::amf0 {

inline bool same_number(double a, double b) {
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

inline bool same_value(const Value& a, const Value& b) {
  if (a.v.index() != b.v.index()) return false;
  if (const auto* d = std::get_if<double>(&a.v)) return same_number(*d, std::get<double>(b.v));
  if (const auto* x = std::get_if<bool>(&a.v)) return *x == std::get<bool>(b.v);
  if (const auto* s = std::get_if<std::string>(&a.v)) return *s == std::get<std::string>(b.v);
  if (const auto* d = std::get_if<Date>(&a.v)) {
    const auto& e = std::get<Date>(b.v);
    return same_number(d->ms, e.ms) && d->tz == e.tz;
  }
  if (const auto* o = std::get_if<Object>(&a.v)) {
    const auto& p = std::get<Object>(b.v);
    if (a.ecma != b.ecma || o->size() != p.size()) return false;
    for (std::size_t i = 0; i < o->size(); ++i) {
      if ((*o)[i].first != p[i].first || !same_value((*o)[i].second, p[i].second)) return false;
    }
    return true;
  }
  if (const auto* r = std::get_if<Array>(&a.v)) {
    const auto& q = std::get<Array>(b.v);
    if (r->size() != q.size()) return false;
    for (std::size_t i = 0; i < r->size(); ++i) {
      if (!same_value((*r)[i], q[i])) return false;
    }
    return true;
  }
  return true;  // Null, Undefined
}

}  // namespace sf::rtmp::amf0
