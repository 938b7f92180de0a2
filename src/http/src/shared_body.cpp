#include "sf/http/shared_body.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace sf::http {

namespace asio = boost::asio;

SharedBody::SharedBody(std::size_t size) {
  MutableBytes block(size);
  writable_ = block.data();
  // Frozen at once so consumers can share it; the producer keeps writing above available() only,
  // which no consumer reads (see the header).
  bytes_ = Bytes::freeze(std::move(block));
}

void SharedBody::advance(std::size_t n) {
  if (n == 0) return;
  available_.store(std::min(size(), available_.load(std::memory_order_relaxed) + n), std::memory_order_release);
  wake_all();
}

void SharedBody::fail() {
  if (hold_) {
    broken_ = true;
    return;
  }
  fail_now();
}

void SharedBody::fail_now() {
  failed_.store(true, std::memory_order_release);
  wake_all();
}

bool SharedBody::finish_with(std::span<const std::byte> rest) {
  if (rest.size() != left() || failed()) return false;
  if (!rest.empty()) std::memcpy(write_position(), rest.data(), rest.size());
  broken_ = false;
  advance(rest.size());
  return true;
}

void SharedBody::when_beyond(std::size_t seen, const asio::any_io_executor& ex, std::function<void()> wake) const {
  {
    std::lock_guard lock(mu_);
    // Checked under the lock that advance() takes after publishing: no progress is missed.
    if (available() <= seen && !failed()) {
      waiters_.emplace_back(ex, std::move(wake));
      return;
    }
  }
  asio::post(ex, std::move(wake));
}

void SharedBody::wake_all() {
  std::vector<std::pair<asio::any_io_executor, std::function<void()>>> now;
  {
    std::lock_guard lock(mu_);
    now.swap(waiters_);
  }
  if (now.empty()) return;
  // One post per executor carrying all of its wake-ups (a few I/O threads, many waiters).
  std::vector<std::pair<asio::any_io_executor, std::vector<std::function<void()>>>> by_executor;
  for (auto& [ex, wake] : now) {
    auto it = std::find_if(by_executor.begin(), by_executor.end(), [&](auto& g) { return g.first == ex; });
    if (it == by_executor.end()) it = by_executor.insert(by_executor.end(), {ex, {}});
    it->second.push_back(std::move(wake));
  }
  for (auto& [ex, group] : by_executor)
    asio::post(ex, [group = std::move(group)] {
      for (auto& w : group) w();
    });
}

}  // namespace sf::http
