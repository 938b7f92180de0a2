#include "cache.h"

namespace sf::edge {

namespace {
constexpr std::size_t kFrontEntries = 4096;  // per thread; past it the front starts over
}

Cache::Front& Cache::front() {
  // One front per (thread, cache): a process may hold several edges (tests, `all`).
  thread_local std::unordered_map<const Cache*, Front> fronts;
  return fronts[this];
}

std::shared_ptr<const Entry> Cache::find(const std::string& key, Clock::time_point now) {
  auto& f = front();
  if (auto it = f.map.find(key); it != f.map.end()) {
    // A streamed entry whose body has completed is replaced in the store by the final entry (its
    // ETag, its memfd): look there rather than keep serving the stand-in from this front.
    const auto& e = *it->second;
    if (e.fresh(now) && !e.arrived()) return it->second;
    f.map.erase(it);
  }
  std::shared_ptr<const Entry> e;
  {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    if (!it->second->fresh(now)) {
      bytes_ -= it->second->bytes();
      map_.erase(it);  // its order_ record is skipped when it comes up
      return nullptr;
    }
    e = it->second;
  }
  if (f.map.size() >= kFrontEntries) f.map.clear();
  f.map.emplace(key, e);
  return e;
}

void Cache::store(const std::string& key, std::shared_ptr<const Entry> entry) {
  std::size_t size = entry->bytes();
  if (size > max_bytes_ / 4) return;  // one object may not take over the cache
  std::lock_guard lock(mu_);
  auto [it, inserted] = map_.try_emplace(key, entry);
  if (!inserted) {
    // The same object completed (a streamed entry replaced by its final one): it keeps its place.
    bool same_size = it->second->bytes() == size;
    bytes_ -= it->second->bytes();
    it->second = entry;
    if (same_size) {
      bytes_ += size;
      return;
    }
  }
  bytes_ += size;
  order_.emplace_back(key, size);
  while (bytes_ > max_bytes_ && !order_.empty()) {
    auto [old, old_size] = std::move(order_.front());
    order_.pop_front();
    auto victim = map_.find(old);
    // Skip records of keys that were replaced or already dropped as expired.
    if (victim == map_.end() || victim->second->bytes() != old_size) continue;
    bytes_ -= old_size;
    map_.erase(victim);
    ++evictions_;
  }
  if (order_.size() > 4 * map_.size() + 1024) {
    // Records of replaced or expired keys pile up with short-lived playlists: compact.
    std::deque<std::pair<std::string, std::size_t>> live;
    for (auto& rec : order_)
      if (auto m = map_.find(rec.first); m != map_.end() && m->second->bytes() == rec.second) live.push_back(rec);
    order_.swap(live);
  }
}

std::size_t Cache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

std::uint64_t Cache::evictions() const {
  std::lock_guard lock(mu_);
  return evictions_;
}

}  // namespace sf::edge
