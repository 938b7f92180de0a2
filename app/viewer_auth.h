// Viewer-token wiring shared by the roles that serve or issue playback tokens: which keys to use
// (auth.token_keys, or the random key persisted beside the store), the background refresher that
// keeps the origin's set of token-protected streams current, and the `streamflex viewer-token`
// command that issues a token locally with those keys. All but the refresher: startup only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app_config.h"
#include "sf/auth/store.h"
#include "sf/auth/token.h"
#include "sf/auth/token_access.h"
#include "sf/core/result.h"

namespace sf::app {

// auth.token_keys when set, else <store dir>/token-keys, created with one random key if missing
// and `create` (roles that issue tokens or own the store); without `create` a missing file gives no
// keys (an edge alone then refuses protected objects). Throws std::runtime_error naming the key or
// the file when they are unusable.
std::vector<auth::TokenKey> resolve_token_keys(const AppConfig& cfg, bool create = true);

// Path of the persisted default key file: "token-keys" beside store.path.
std::string default_token_key_path(const AppConfig& cfg);

// Prints a token for `stream`, valid for ttl_s seconds (bound to client_ip when not empty), signed
// with the first key. Returns the process exit code.
int issue_token_command(const AppConfig& cfg, const std::string& stream, std::int64_t ttl_s,
                        const std::string& client_ip);

// Reloads the names of token-protected streams every `interval` on its own thread (the source may
// block, e.g. on SQLite) and swaps them into `target`; request threads never wait for it. The
// constructor loads once before returning and throws if that fails, so a server never starts
// serving protected streams as public. Later failures keep the last set and are logged.
class VisibilityRefresher {
 public:
  using Source = std::function<Result<std::set<std::string, std::less<>>>()>;
  VisibilityRefresher(std::shared_ptr<auth::ProtectedStreams> target, Source source,
                      std::chrono::milliseconds interval);
  ~VisibilityRefresher();
  VisibilityRefresher(const VisibilityRefresher&) = delete;
  VisibilityRefresher& operator=(const VisibilityRefresher&) = delete;

 private:
  bool refresh();
  void run();

  std::shared_ptr<auth::ProtectedStreams> target_;
  Source source_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool failing_ = false;
  std::thread thread_;
};

// The source the origin's refresher reads: names of streams whose visibility is not "public"
// (unknown values count as protected).
VisibilityRefresher::Source protected_streams_source(auth::Store& store);

}  // namespace sf::app
