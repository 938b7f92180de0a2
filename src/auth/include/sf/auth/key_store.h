// Publisher stream keys. A key is a random secret shown once at creation; the store keeps only its
// SHA-256 hash, so a leaked database does not leak keys. KeyStore is the interface ingest and the
// command line use; SQLite is the embedded implementation (a Redis one follows for distributed
// deployments). Methods are thread-safe and may block on storage: call them off I/O threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/result.h"

namespace sf::auth {

struct PublishGrant {
  std::string stream;     // the stream the key publishes to
  std::string key_id;     // non-secret id of the key, safe for logs
  bool takeover = false;  // a new publisher replaces a live one instead of being refused
  std::string profile{};  // the stream's transcoding ladder ("": the configured default)
  // The stream's delivery settings: "ll-hls" or "hls" ("": the origin's defaults, as are 0 targets).
  std::string latency{};
  std::int64_t part_target_ms = 0, segment_target_ms = 0;
  // An authenticated StreamFlex relay (the transcode role's secret matched): the session applies
  // the epochs its "@streamflex" messages announce (ingest/relay.h).
  bool relay = false;
};

// What ingest knows when a publisher asks to publish (for checks beyond the key, e.g. webhooks).
struct PublishRequest {
  std::string key;     // secret: never log it
  std::string app;     // RTMP application ("live")
  std::string remote;  // peer address:port
  // The publish name's query, after '?' (not part of the key): a StreamFlex relay's stream
  // settings, which only a relay's key store (the transcode role's) reads.
  std::string query{};
};

struct KeyInfo {
  std::string id;
  std::string stream;
  std::int64_t created_ms = 0;
  std::optional<std::int64_t> revoked_ms;  // revoked, or the end of its grace after a rotation
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Creates a key for `stream` (creating the stream if new) and returns the secret itself.
  virtual Result<std::string> create_key(std::string_view stream) = 0;
  // errc::unauthorized for an unknown or revoked key.
  virtual Result<PublishGrant> check_publish_key(std::string_view key) = 0;
  // The check ingest makes: the key, then whatever a decorator adds (an on_publish webhook).
  // errc::unauthorized for a bad key or a publish a hook refused; by default the key check alone.
  virtual Result<PublishGrant> check_publish(const PublishRequest& req) { return check_publish_key(req.key); }
  virtual Result<std::vector<KeyInfo>> list_keys() = 0;
  // Revokes one key by id, or every key of a stream by stream name. Returns how many were revoked;
  // errc::not_found when nothing matched.
  virtual Result<int> revoke(std::string_view id_or_stream) = 0;
  virtual Result<void> set_takeover(std::string_view stream, bool takeover) = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode, so a running server and
// the command line can use it at once. Throws std::runtime_error at startup if it cannot.
std::unique_ptr<KeyStore> open_sqlite_key_store(const std::string& path);

// Valid stream names: 1-64 of [A-Za-z0-9_-].
bool valid_stream_name(std::string_view name);

}  // namespace sf::auth
