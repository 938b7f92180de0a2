// Webhooks: HTTP callbacks to the operator's systems, signed with HMAC-SHA256 over the body
// (header X-StreamFlex-Signature: sha256=<hex>), each delivery recorded in the store.
// - on_publish is asked before a publish starts and may refuse it: a 2xx answer allows (unless its
//   JSON body says {"allow": false}), any other status denies, and no answer within the timeout
//   applies the configured default. Like nginx-rtmp's on_publish, the body carries call=publish,
//   name, addr and app (JSON, or form-encoded when format is "form"). Not retried.
// - on_publish_done (and later on_record_done) are notifications: queued, sent from a background
//   thread, retried with exponential backoff until a 2xx answer or the attempts run out.
// Threads: allow_publish() blocks (call it off I/O threads); notify() never blocks and may be
// called from any thread. Destroying Webhooks gives notifications not yet sent one attempt for up
// to 2 s (publishes ended by a shutdown are still reported) and abandons retries (their deliveries
// stay "pending").
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sf/auth/store.h"

namespace sf::api {

struct WebhookConfig {
  std::string on_publish;       // URL, empty: no hook
  std::string on_publish_done;  // URL, empty: no hook
  std::string secret;           // HMAC-SHA256 key for X-StreamFlex-Signature
  std::string format = "json";  // "json" | "form" (application/x-www-form-urlencoded, as nginx-rtmp)
  std::chrono::milliseconds timeout{3000};
  bool on_publish_default_allow = false;  // when on_publish does not answer in time
  std::int64_t max_attempts = 5;
  std::chrono::milliseconds retry_base{1000};  // then doubling
};

// The hex HMAC-SHA256 of `body` under `secret`, as sent after "sha256=".
std::string webhook_signature(std::string_view secret, std::string_view body);

class Webhooks {
 public:
  // `store` (nullable) records deliveries; it must outlive this object.
  Webhooks(WebhookConfig config, auth::Store* store);
  ~Webhooks();
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  bool has_on_publish() const;
  // Blocks up to the timeout. True: publish allowed.
  bool allow_publish(const auth::PublishRequest& req, const auth::PublishGrant& grant);
  // Queues a notification event ("on_publish_done", ...) for `stream`; `fields` are added to the
  // body. Ignored when no URL is configured for the event.
  void notify(std::string event, std::string stream, nlohmann::json fields);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// A KeyStore that checks the key with `inner`, then asks the on_publish webhook.
class HookedKeyStore final : public auth::KeyStore {
 public:
  HookedKeyStore(auth::KeyStore& inner, Webhooks& hooks) : inner_(inner), hooks_(hooks) {}
  Result<std::string> create_key(std::string_view stream) override { return inner_.create_key(stream); }
  Result<auth::PublishGrant> check_publish_key(std::string_view key) override { return inner_.check_publish_key(key); }
  Result<auth::PublishGrant> check_publish(const auth::PublishRequest& req) override;
  Result<std::vector<auth::KeyInfo>> list_keys() override { return inner_.list_keys(); }
  Result<int> revoke(std::string_view id_or_stream) override { return inner_.revoke(id_or_stream); }
  Result<void> set_takeover(std::string_view stream, bool takeover) override {
    return inner_.set_takeover(stream, takeover);
  }

 private:
  auth::KeyStore& inner_;
  Webhooks& hooks_;
};

}  // namespace sf::api
