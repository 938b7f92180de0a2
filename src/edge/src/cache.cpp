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
    // ETag, its file): look there rather than keep serving the stand-in from this front.
    const auto& e = *it->second;
    if (e.fresh(now) && !e.arrived()) return it->second;
    f.map.erase(it);
  }
  std::shared_ptr<const Entry> e;
  {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    if (!it->second.entry->fresh(now)) {
      drop(it);  // its order_ record is skipped when it comes up
      return nullptr;
    }
    e = it->second.entry;
  }
  if (f.map.size() >= kFrontEntries) f.map.clear();
  f.map.emplace(key, e);
  return e;
}

void Cache::store(const std::string& key, std::shared_ptr<const Entry> entry) {
  std::size_t size = entry->bytes();
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (size > max_bytes_ / 4) {
    // One object may not take over the cache; an older copy of it is stale now.
    if (it != map_.end()) drop(it);
    return;
  }
  if (it == map_.end()) {
    it = map_.emplace(key, Slot{}).first;
  } else {
    bytes_ -= it->second.bytes;
  }
  // The same object completed (its streamed stand-in replaced by the final entry): it keeps its
  // place. Anything else goes to the back.
  const Entry* old = it->second.entry.get();
  bool keep_place = old && (old->stream || old->source);
  it->second.entry = std::move(entry);
  it->second.bytes = size;
  bytes_ += size;
  if (!keep_place) {
    it->second.seq = ++next_seq_;
    order_.emplace_back(key, it->second.seq);
  }
  evict_past_bound();
  if (order_.size() > 4 * map_.size() + 1024) {
    // Records of replaced or expired keys pile up with short-lived playlists: compact.
    std::deque<std::pair<std::string, std::uint64_t>> live;
    for (auto& rec : order_)
      if (auto m = map_.find(rec.first); m != map_.end() && m->second.seq == rec.second) live.push_back(rec);
    order_.swap(live);
  }
}

void Cache::grow(const std::string& key, const Entry* entry, std::size_t n) {
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end() || it->second.entry.get() != entry) return;
  it->second.bytes += n;
  bytes_ += n;
  if (it->second.bytes > max_bytes_ / 4) {
    drop(it);  // too large to keep, as store() would say; its viewers are still written to
    return;
  }
  evict_past_bound();
}

void Cache::erase(const std::string& key, const Entry* entry) {
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it != map_.end() && it->second.entry.get() == entry) drop(it);
}

void Cache::evict_past_bound() {
  while (bytes_ > max_bytes_ && !order_.empty()) {
    auto [old, seq] = std::move(order_.front());
    order_.pop_front();
    auto victim = map_.find(old);
    // Skip records of keys that were replaced or already dropped.
    if (victim == map_.end() || victim->second.seq != seq) continue;
    drop(victim);
    ++evictions_;
  }
}

void Cache::drop(std::unordered_map<std::string, Slot>::iterator it) {
  bytes_ -= it->second.bytes;
  map_.erase(it);
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
