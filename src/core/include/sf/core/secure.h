// Comparison of secrets that takes the same time wherever the inputs differ (no early exit), so
// response timing does not reveal how much of a guess was right. Pure; any thread.
#pragma once

#include <string_view>

namespace sf {

inline bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // lengths of secrets are not themselves secret
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  return diff == 0;
}

}  // namespace sf
