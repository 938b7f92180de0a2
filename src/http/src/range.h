// Parsing of a single-range HTTP Range header (RFC 9110 14.1.2). Pure; any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace sf::http {

struct ByteRange {
  std::size_t first = 0;
  std::size_t length = 0;
};

// "bytes=a-b", "bytes=a-" or "bytes=-n" against a body of `total` bytes. A last-byte-pos past the
// end is clamped (LL-HLS clients send 2^53-1 for open ranges). nullopt: not satisfiable.
std::optional<ByteRange> parse_range(std::string_view header, std::size_t total);

}  // namespace sf::http
