#include "viewer_auth.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "sf/auth/key_store.h"
#include "sf/core/log.h"

namespace sf::app {

std::string default_token_key_path(const AppConfig& cfg) {
  return (std::filesystem::path(cfg.store_path).parent_path() / "token-keys").string();
}

std::vector<auth::TokenKey> resolve_token_keys(const AppConfig& cfg, bool create) {
  std::string why;
  if (!cfg.token_keys.empty()) {
    auto keys = auth::parse_token_keys(cfg.token_keys, &why);
    if (!keys) throw std::runtime_error("configuration refused: auth.token_keys: " + why);
    return *keys;
  }
  std::error_code ec;
  if (!create && !std::filesystem::exists(default_token_key_path(cfg), ec)) return {};
  auto keys = auth::load_or_create_token_keys(default_token_key_path(cfg), &why);
  if (!keys) throw std::runtime_error(why);
  return *keys;
}

int issue_token_command(const AppConfig& cfg, const std::string& stream, std::int64_t ttl_s,
                        const std::string& client_ip) {
  if (!auth::valid_stream_name(stream)) {
    std::fprintf(stderr, "streamflex viewer-token: stream names are 1-64 of A-Z a-z 0-9 _ -\n");
    return 2;
  }
  auto keys = resolve_token_keys(cfg);
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  std::printf("%s\n", auth::issue_token(keys.front(), stream, now.count() + ttl_s, client_ip).c_str());
  return 0;
}

VisibilityRefresher::VisibilityRefresher(std::shared_ptr<auth::ProtectedStreams> target, Source source,
                                         std::chrono::milliseconds interval)
    : target_(std::move(target)), source_(std::move(source)), interval_(interval) {
  auto first = source_();
  if (!first) throw std::runtime_error("cannot read stream visibility from the store: " + first.error().message());
  target_->replace(std::move(*first));
  thread_ = std::thread([this] { run(); });
}

VisibilityRefresher::~VisibilityRefresher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool VisibilityRefresher::refresh() {
  auto names = source_();
  if (!names) {
    if (!failing_)
      log::warn("auth", "stream visibility refresh failed; keeping the last set", {{"error", names.error().message()}});
    failing_ = true;
    return false;
  }
  if (failing_) log::info("auth", "stream visibility refresh works again");
  failing_ = false;
  target_->replace(std::move(*names));
  return true;
}

void VisibilityRefresher::run() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();
    refresh();
    lock.lock();
  }
}

VisibilityRefresher::Source protected_streams_source(auth::Store& store) {
  return [&store]() -> Result<std::set<std::string, std::less<>>> {
    auto streams = store.list_streams();
    if (!streams) return std::unexpected(streams.error());
    std::set<std::string, std::less<>> names;
    for (auto& s : *streams)
      if (s.visibility != "public") names.insert(s.name);
    return names;
  };
}

}  // namespace sf::app
