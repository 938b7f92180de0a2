#include "range.h"

#include <charconv>
#include <cstdint>

namespace sf::http {
namespace {

bool number(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<ByteRange> parse_range(std::string_view h, std::size_t total) {
  constexpr std::string_view prefix = "bytes=";
  if (!h.starts_with(prefix)) return std::nullopt;
  h.remove_prefix(prefix.size());
  if (h.find(',') != std::string_view::npos) return std::nullopt;  // multiple ranges: not offered
  auto dash = h.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto a = h.substr(0, dash), b = h.substr(dash + 1);
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last n bytes
    if (!number(b, last) || last == 0 || total == 0) return std::nullopt;
    std::size_t n = std::min<std::uint64_t>(last, total);
    return ByteRange{total - n, n};
  }
  if (!number(a, first) || first >= total) return std::nullopt;
  if (b.empty()) return ByteRange{first, total - first};
  if (!number(b, last) || last < first) return std::nullopt;
  if (last >= total) last = total - 1;
  return ByteRange{first, last - first + 1};
}

}  // namespace sf::http
