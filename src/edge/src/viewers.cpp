#include "viewers.h"

#include <vector>

namespace sf::edge {

void ViewerCount::seen(std::string_view stream, std::string_view token, std::string_view remote,
                       std::string_view user_agent, std::int64_t now_ms) {
  if (stream.empty()) return;
  // One key buffer per thread, reused: no allocation per request once it has grown.
  thread_local std::string key;
  key.clear();
  key.append(stream).push_back('\n');
  if (!token.empty()) {
    key.append("t:").append(token);
  } else {
    key.append(remote).push_back('\n');
    key.append(user_agent);
  }
  // Players ask several times a second (parts, blocking reloads): most calls stop here.
  thread_local std::string last_key;
  thread_local std::int64_t last_ms = 0;
  thread_local const ViewerCount* last_counter = nullptr;
  if (last_counter == this && now_ms - last_ms < 1000 && key == last_key) return;
  last_counter = this;
  last_ms = now_ms;
  last_key = key;

  std::lock_guard lock(mu_);
  if (now_ms - last_prune_ms_ >= 1000) prune(now_ms);
  auto it = last_seen_.find(key);
  if (it != last_seen_.end()) {
    it->second = now_ms;
  } else if (last_seen_.size() < kMaxViewerKeys) {
    last_seen_.emplace(key, now_ms);
  } else {
    ++overflow_;
  }
}

void ViewerCount::prune(std::int64_t now_ms) {
  last_prune_ms_ = now_ms;
  std::erase_if(last_seen_, [&](const auto& kv) { return now_ms - kv.second > kViewerWindow.count(); });
}

std::map<std::string, std::int64_t> ViewerCount::counts(std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  prune(now_ms);
  std::map<std::string, std::int64_t> out;
  for (auto& [key, _] : last_seen_) ++out[key.substr(0, key.find('\n'))];
  return out;
}

std::uint64_t ViewerCount::overflow() const {
  std::lock_guard lock(mu_);
  return overflow_;
}

}  // namespace sf::edge
