// Viewer-token enforcement shared by the origin and the edge.
//
// - ProtectedStreams: the names of streams whose visibility is "token", as an immutable snapshot
//   swapped atomically; request threads read it without blocking while a background refresher
//   replaces it (the app refreshes it from Store::list_streams()).
// - TokenChecker: verifies a request's token for a stream with a per-thread cache of recent
//   successes, so a player fetching parts several times a second costs one HMAC per token, not one
//   per request; it also mints the short-lived upstream tokens an edge sends to its origin.
// - add_token_to_hls / add_token_to_dash: the cheap serve-time text rewrite that carries a
//   viewer's token into every URL a cached, token-free playlist or MPD names, so standard players
//   need nothing special.
//
// Wire conventions: the viewer's token is the query parameter `token`; an edge's upstream fetch
// carries its own token in the X-SF-Token header (never in the cached URL); the objects a server
// serves for a stream carry X-SF-Access: token or public, which tells an edge (that has no store)
// whether to check its viewers, for that object and for every object of the stream it cached.
// A missing token and a bad one are both answered 403 (the body says which).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sf/auth/token.h"

namespace sf::auth {

inline constexpr std::string_view kTokenParam = "token";
inline constexpr std::string_view kTokenHeader = "X-SF-Token";
inline constexpr std::string_view kAccessHeader = "X-SF-Access";
inline constexpr std::string_view kAccessToken = "token";
inline constexpr std::string_view kAccessPublic = "public";

class ProtectedStreams {
 public:
  ProtectedStreams();
  // Any thread; never blocks on a refresh. Each thread keeps the snapshot it last saw and only
  // reloads it when the version moved, so a request costs one relaxed-contention atomic load.
  bool contains(std::string_view stream) const;
  // Replaces the whole set; any thread.
  void replace(std::set<std::string, std::less<>> names);

 private:
  using Set = std::set<std::string, std::less<>>;
  std::atomic<std::shared_ptr<const Set>> names_;
  std::atomic<std::uint64_t> version_;  // unique across instances; bumped by replace()
};

// The outcome of checking a request for a protected object.
struct AccessDecision {
  int status = 0;            // 0: allowed; else the HTTP status to answer (403)
  std::string_view message;  // body text for refusals, and the reason for logs
};

class TokenChecker {
 public:
  explicit TokenChecker(std::vector<TokenKey> keys);

  // Any thread. `token` is the request's `token` parameter, or its X-SF-Token header when absent.
  AccessDecision check(std::string_view token, std::string_view stream, std::string_view client_ip) const;

  // A token for an edge's upstream fetch of `stream`: signed with the first key, valid at least a
  // minute, and the same text for about half a minute so upstreams' caches hit. "" without keys.
  std::string upstream_token(std::string_view stream) const;

  bool has_keys() const { return !keys_.empty(); }

 private:
  std::vector<TokenKey> keys_;
  std::uint64_t instance_;  // tells per-thread caches of different checkers apart
};

// The stream of a /live/<stream>/... path, or "" for other paths.
std::string_view live_stream_of(std::string_view path);

// Appends "token=<token>" to every URI of an HLS playlist (URI lines and URI="..." attributes:
// EXT-X-MAP, EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT, EXT-X-MEDIA, ...).
// `token` must be URL-safe text (issue_token's alphabet); other text is returned unchanged.
std::string add_token_to_hls(std::string_view playlist, std::string_view token);

// Appends "token=<token>" to the media and initialization templates and BaseURLs of an MPD.
std::string add_token_to_dash(std::string_view mpd, std::string_view token);

// Whether `token` only holds issue_token's characters (safe to paste into URLs unescaped).
bool url_safe_token(std::string_view token);

}  // namespace sf::auth
