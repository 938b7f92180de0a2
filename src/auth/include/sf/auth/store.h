// The control plane's store: streams with their settings, stream keys (hashed, rotatable with a
// grace period, revocable), API keys with scopes (hashed) and webhook deliveries. Store extends
// KeyStore, so ingest and `streamflex keys` use it unchanged. SQLite (WAL, versioned migrations
// recorded in PRAGMA user_version) is the embedded implementation; a Redis-backed one implements
// the same interface for distributed deployments.
// Threads: every method is thread-safe and may block on storage; call them off I/O threads.
// Secrets (stream keys, API keys) are returned once, at creation; only their SHA-256 is stored.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sf/auth/key_store.h"
#include "sf/core/result.h"

namespace sf::auth {

// Bounds of a stream's latency settings (validate_stream). Parts of 0.1-2 s (LL-HLS PART-TARGET;
// Apple recommends 1 s); a segment at least one part and at most 10 s (RFC 8216bis TARGETDURATION,
// Apple's 6 s advice with room), and at least 0.5 s, since every segment starts with a keyframe.
inline constexpr std::int64_t kMinPartTargetMs = 100, kMaxPartTargetMs = 2000;
inline constexpr std::int64_t kMinSegmentTargetMs = 500, kMaxSegmentTargetMs = 10000;

struct StreamRecord {
  std::string name;
  std::string visibility = "public";  // "public" | "token"
  std::string profile = "default";    // ladder profile name, "passthrough", or "default" (transcode.profile)
  std::string latency = "ll-hls";     // "ll-hls" | "hls"
  std::int64_t part_target_ms = 500, segment_target_ms = 2000;
  bool takeover = false;
  std::int64_t created_ms = 0, updated_ms = 0;
};

// A stream key as listed: never the secret. State at `now_ms`: "revoked" (revoked, or its grace
// period after a rotation ended), "grace" (rotated, still accepted until expires_ms), "active".
struct StreamKeyRecord {
  std::string id;
  std::string stream;
  std::int64_t created_ms = 0;
  std::optional<std::int64_t> expires_ms;
  std::optional<std::int64_t> revoked_ms;
  std::string state(std::int64_t now_ms) const;
};

// A secret created just now, with its non-secret id. Shown once.
struct NewSecret {
  std::string id;
  std::string secret;
};

struct RotatedKey {
  NewSecret key;
  std::string old_id;
  std::int64_t old_expires_ms = 0;
};

// Scopes: "admin" (everything), "streams" (streams, stream keys, live state, deliveries),
// "tokens" (read streams, issue viewer tokens), "ingest" (check publish keys, for ingest running
// alone).
struct ApiKeyRecord {
  std::string id{};
  std::string name{};
  std::vector<std::string> scopes{};
  std::int64_t created_ms = 0;
  std::optional<std::int64_t> revoked_ms{};
  bool has_scope(std::string_view scope) const;  // admin has every scope
};

struct WebhookDelivery {
  std::int64_t id = 0;
  std::string event{};  // "on_publish", "on_publish_done", ...
  std::string stream{};
  std::string url{};
  std::string state = "pending";  // "pending" | "delivered" | "failed"
  std::string outcome{};          // on_publish: "allow" | "deny" (after the default, if it applied)
  int attempts = 0;
  int last_status = 0;  // HTTP status of the last attempt (0: none)
  std::string last_error{};
  std::int64_t created_ms = 0, updated_ms = 0;
};

class Store : public KeyStore {
 public:
  virtual Result<std::vector<StreamRecord>> list_streams() = 0;
  // errc::not_found.
  virtual Result<StreamRecord> get_stream(std::string_view name) = 0;
  // Creates the stream and its first key. errc::conflict if it exists, errc::invalid_argument if
  // a setting is invalid (see validate_stream).
  virtual Result<NewSecret> create_stream(const StreamRecord& stream) = 0;
  // Replaces the settings of an existing stream (name, created_ms kept). errc::not_found.
  virtual Result<StreamRecord> update_stream(const StreamRecord& stream) = 0;
  // Deletes the stream and every key of it. errc::not_found.
  virtual Result<void> delete_stream(std::string_view name) = 0;

  // errc::not_found when the stream does not exist.
  virtual Result<std::vector<StreamKeyRecord>> list_stream_keys(std::string_view stream) = 0;
  virtual Result<NewSecret> create_stream_key(std::string_view stream) = 0;
  // A new key; the old one keeps working for `grace_ms` (0: stops now). errc::not_found for an
  // unknown stream or key, errc::conflict if the old key is already revoked or rotated.
  virtual Result<RotatedKey> rotate_stream_key(std::string_view stream, std::string_view id, std::int64_t grace_ms) = 0;
  // errc::not_found, errc::conflict if already revoked.
  virtual Result<void> revoke_stream_key(std::string_view stream, std::string_view id) = 0;

  // errc::invalid_argument for an unknown scope or an empty/oversized name.
  virtual Result<NewSecret> create_api_key(std::string_view name, const std::vector<std::string>& scopes) = 0;
  virtual Result<std::vector<ApiKeyRecord>> list_api_keys() = 0;
  // errc::unauthorized for an unknown or revoked key (compared in constant time).
  virtual Result<ApiKeyRecord> check_api_key(std::string_view key) = 0;
  // errc::not_found (unknown or already revoked).
  virtual Result<void> revoke_api_key(std::string_view id) = 0;

  // Records a delivery; returns its id. The most recent 1000 are kept.
  virtual Result<std::int64_t> add_delivery(const WebhookDelivery& d) = 0;
  virtual Result<void> update_delivery(const WebhookDelivery& d) = 0;
  // Newest first.
  virtual Result<std::vector<WebhookDelivery>> list_deliveries(std::size_t limit) = 0;
};

// Opens (creating, or migrating an older schema of, the database at `path`) in WAL mode. Throws
// std::runtime_error at startup if it cannot.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

// Checks every setting; on failure says which and why in `why`.
bool validate_stream(const StreamRecord& s, std::string& why);
bool valid_scope(std::string_view scope);

}  // namespace sf::auth
