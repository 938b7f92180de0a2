// The KeyStore of an ingest running without the store in its process: it asks the api role
// (POST /api/ingest/check, an API key with scope "ingest") and keeps each answer, allowed or
// refused, for a short time, so a burst of reconnects costs one call. A revoked key may thus keep
// working for up to the cache time. Only check_publish/check_publish_key are supported; the
// management methods answer errc::unsupported (use the API).
// Threads: thread-safe; blocks (call it off I/O threads, as ingest does).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "sf/auth/key_store.h"

namespace sf::api {

struct RemoteKeyStoreConfig {
  std::string api_url;  // "http://127.0.0.1:8090"
  std::string api_key;  // secret, scope "ingest"
  std::chrono::milliseconds cache{2000};
  std::chrono::milliseconds timeout{3000};
};

std::unique_ptr<auth::KeyStore> make_remote_key_store(RemoteKeyStoreConfig config);

}  // namespace sf::api
