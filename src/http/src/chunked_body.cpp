#include "sf/http/chunked_body.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace sf::http {

namespace asio = boost::asio;

void ChunkedBody::append(Bytes piece) {
  std::size_t n = piece.size();
  if (n == 0) return;
  std::unique_lock lock(mu_);
  if (ended() || failed()) return;
  size_ += n;
  pieces_.push_back(std::move(piece));
  broken_ = false;
  wake_all(lock);
  if (grown_) grown_(n);
}

void ChunkedBody::end() {
  std::unique_lock lock(mu_);
  if (failed()) return;
  broken_ = false;
  ended_.store(true, std::memory_order_release);
  take_finish_waiters();
  wake_all(lock);
  grown_ = nullptr;
}

void ChunkedBody::fail() {
  if (hold_) {
    broken_ = true;
    return;
  }
  fail_now();
}

void ChunkedBody::fail_now() {
  std::unique_lock lock(mu_);
  if (ended()) return;
  failed_.store(true, std::memory_order_release);
  take_finish_waiters();
  wake_all(lock);
  grown_ = nullptr;
}

void ChunkedBody::on_append(std::function<void(std::size_t)> grown) {
  grown_ = std::move(grown);
}

std::size_t ChunkedBody::size() const {
  std::lock_guard lock(mu_);
  return size_;
}

std::vector<Bytes> ChunkedBody::pieces() const {
  std::lock_guard lock(mu_);
  return pieces_;
}

Bytes ChunkedBody::joined() const {
  std::lock_guard lock(mu_);
  MutableBytes whole(size_);
  std::size_t at = 0;
  for (auto& p : pieces_) {
    std::memcpy(whole.data() + at, p.data(), p.size());
    at += p.size();
  }
  return Bytes::freeze(std::move(whole));
}

BodySource::Progress ChunkedBody::read(std::size_t from, std::vector<Bytes>& out) const {
  std::lock_guard lock(mu_);
  Progress p;
  for (std::size_t i = from; i < pieces_.size(); ++i) out.push_back(pieces_[i]);  // shared, not copied
  p.next = std::max(from, pieces_.size());
  p.ended = ended();
  p.failed = failed();
  return p;
}

void ChunkedBody::when_beyond(std::size_t from, const asio::any_io_executor& ex, std::function<void()> wake) const {
  {
    std::lock_guard lock(mu_);
    // Checked under the lock that append/end/fail take: no progress is missed.
    if (pieces_.size() <= from && !ended() && !failed()) {
      waiters_.emplace_back(ex, std::move(wake));
      return;
    }
  }
  asio::post(ex, std::move(wake));
}

void ChunkedBody::when_finished(const asio::any_io_executor& ex, std::function<void()> wake) const {
  {
    std::lock_guard lock(mu_);
    if (!ended() && !failed()) {
      finish_waiters_.emplace_back(ex, std::move(wake));
      return;
    }
  }
  asio::post(ex, std::move(wake));
}

void ChunkedBody::take_finish_waiters() {
  for (auto& w : finish_waiters_) waiters_.push_back(std::move(w));
  finish_waiters_.clear();
}

void ChunkedBody::wake_all(std::unique_lock<std::mutex>& lock) {
  std::vector<std::pair<asio::any_io_executor, std::function<void()>>> now;
  now.swap(waiters_);
  lock.unlock();
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
