// libFuzzer target for viewer tokens and the playlist rewrite, both fed hostile text: the first
// input byte picks what the rest is. verify_token must never accept text it did not issue (only
// the one real token passes), and the HLS/DASH rewrites must keep every input byte in order (they
// only insert) and insert nothing for a token that is not URL-safe.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sf/auth/token.h"
#include "sf/auth/token_access.h"

namespace {

// Whether `small` is a subsequence of `big` (the rewrite only inserted text).
bool subsequence(std::string_view small, std::string_view big) {
  std::size_t i = 0;
  for (char c : big)
    if (i < small.size() && small[i] == c) ++i;
  return i == small.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sf::auth;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const std::vector<TokenKey> keys{{"k1", "fuzz-secret-0123456789"}};
  static const std::string real = issue_token(keys[0], "s", 2'000'000'000);
  switch (data[0] % 4) {
    case 0: {
      auto r = verify_token(keys, in, "s", 1'800'000'000, "127.0.0.1");
      if (r && in != real) std::abort();
      break;
    }
    case 1: {
      std::string why;
      (void)parse_token_keys(in, &why);
      break;
    }
    case 2: {
      auto out = add_token_to_hls(in, "1.k1.5..sig");
      if (!subsequence(in, out)) std::abort();
      if (add_token_to_hls(in, "bad\"token") != in) std::abort();
      break;
    }
    default: {
      auto out = add_token_to_dash(in, "1.k1.5..sig");
      if (!subsequence(in, out)) std::abort();
      break;
    }
  }
  return 0;
}
