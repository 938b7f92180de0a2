// Viewer (playback) tokens for streams whose visibility is "token". A token is a short URL-safe text
// that names the signing key's id, the expiry and optionally the client IP it is bound to, plus an
// HMAC-SHA256 over those fields and the stream name; the stream name itself is not in the token, so a
// token for one stream fails on any other. The origin and the edge verify tokens themselves with their
// own copy of the keys (configuration key auth.token_keys); nothing calls the API.
//
// Keys rotate: the first key of the list signs, every key of the list verifies, so an operator adds a
// new key in front, waits for old tokens to expire, then drops the old key.
//
// Everything here is pure and thread-safe except load_or_create_token_keys (startup, file I/O).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/result.h"

namespace sf::auth {

struct TokenKey {
  std::string id;      // [A-Za-z0-9_-]{1,32}; travels in the token
  std::string secret;  // at least kMinTokenSecret bytes, no ','
};

constexpr std::size_t kMinTokenSecret = 16;
constexpr std::size_t kMaxTokenLength = 256;  // longer query values are refused before any work

// "id:secret[,id:secret...]"; the first key signs, all verify (rotation). On failure the error is
// errc::invalid_argument and, when `why` is given, it receives a sentence naming the problem.
Result<std::vector<TokenKey>> parse_token_keys(std::string_view spec, std::string* why = nullptr);

// HMAC-SHA256 over version, key id, stream, expiry and optional client IP; URL-safe text
// ([A-Za-z0-9._-] only, so it needs no escaping in a query string).
std::string issue_token(const TokenKey& key, std::string_view stream, std::int64_t expires_unix_s,
                        std::string_view client_ip = {});

// errc::malformed for text that is not a token; errc::unauthorized for forged, expired, unknown-key,
// other-stream and wrong-IP tokens. `reason`, when given, receives a short static description for
// logs (never the token). A token bound to an IP only passes for that client_ip (IPv4-mapped IPv6
// addresses compare equal to their IPv4 form).
Result<void> verify_token(const std::vector<TokenKey>& keys, std::string_view token, std::string_view stream,
                          std::int64_t now_unix_s, std::string_view client_ip, std::string_view* reason = nullptr);

// A fresh random key (id "k" + 8 hex digits, 32 random bytes of secret as URL-safe text).
TokenKey generate_token_key();

// Formats keys back into the auth.token_keys syntax.
std::string format_token_keys(const std::vector<TokenKey>& keys);

// The default when auth.token_keys is empty: reads the key spec from `path`, or creates the file
// (mode 0600, parent directories as needed) with one random key so tokens survive restarts.
// Startup only; errors carry a message naming the file.
Result<std::vector<TokenKey>> load_or_create_token_keys(const std::string& path, std::string* why = nullptr);

}  // namespace sf::auth
