#include "sf/api/remote_key_store.h"

#include <openssl/evp.h>

#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "sf/api/http_call.h"
#include "sf/core/log.h"

namespace sf::api {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Cache entries are keyed by a digest of the key and request, so no secret is kept in memory
// longer than the call.
std::string digest(const auth::PublishRequest& req) {
  std::string material = req.key + '\n' + req.app + '\n' + req.remote.substr(0, req.remote.rfind(':'));
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(material.data(), material.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

class RemoteKeyStore final : public auth::KeyStore {
 public:
  explicit RemoteKeyStore(RemoteKeyStoreConfig c) : config_(std::move(c)) {}

  Result<std::string> create_key(std::string_view) override { return fail(errc::unsupported); }
  Result<std::vector<auth::KeyInfo>> list_keys() override { return fail(errc::unsupported); }
  Result<int> revoke(std::string_view) override { return fail(errc::unsupported); }
  Result<void> set_takeover(std::string_view, bool) override { return fail(errc::unsupported); }

  Result<auth::PublishGrant> check_publish_key(std::string_view key) override {
    return check_publish({std::string(key), {}, {}});
  }

  Result<auth::PublishGrant> check_publish(const auth::PublishRequest& req) override {
    if (req.key.empty() || req.key.size() > 256) return fail(errc::unauthorized);
    auto id = digest(req);
    auto now = Clock::now();
    {
      std::lock_guard lock(mu_);
      std::erase_if(cache_, [&](auto& e) { return e.second.until <= now; });
      if (auto it = cache_.find(id); it != cache_.end()) return it->second.answer;
    }
    json body{{"key", req.key}, {"app", req.app}, {"addr", req.remote.substr(0, req.remote.rfind(':'))}};
    auto r = http_call("POST", config_.api_url + "/api/ingest/check",
                       {{"Authorization", "Bearer " + config_.api_key}, {"Content-Type", "application/json"}},
                       body.dump(), config_.timeout);
    if (!r) {
      log::warn("ingest", "publish check: the API did not answer", {{"error", r.error().message()}});
      return fail(errc::io_error);
    }
    auto j = json::parse(r->body, nullptr, false);
    if (r->status != 200 || !j.is_object() || !j.contains("allow") || !j["allow"].is_boolean()) {
      log::warn("ingest", "publish check: unexpected answer from the API", {{"status", r->status}});
      return fail(errc::io_error);
    }
    Result<auth::PublishGrant> answer = fail(errc::unauthorized);
    if (j["allow"].get<bool>()) {
      if (!j.contains("stream") || !j["stream"].is_string()) return fail(errc::io_error);
      answer = auth::PublishGrant{j["stream"].get<std::string>(),
                                  j.value("key_id", ""),
                                  j.value("takeover", false),
                                  j.value("profile", ""),
                                  j.value("latency", ""),
                                  j.value("part_target_ms", std::int64_t{0}),
                                  j.value("segment_target_ms", std::int64_t{0})};
    }
    std::lock_guard lock(mu_);
    if (cache_.size() < 10000) cache_[id] = {answer, now + config_.cache};
    return answer;
  }

 private:
  struct Entry {
    Result<auth::PublishGrant> answer;
    Clock::time_point until;
  };
  RemoteKeyStoreConfig config_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;
};

}  // namespace

std::unique_ptr<auth::KeyStore> make_remote_key_store(RemoteKeyStoreConfig config) {
  return std::make_unique<RemoteKeyStore>(std::move(config));
}

}  // namespace sf::api
