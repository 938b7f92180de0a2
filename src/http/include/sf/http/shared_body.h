// A response body that is still arriving: one block of its final size (the upstream's
// Content-Length), filled front to back by one producer (the HTTP client reading the upstream) and
// read by any number of consumers (server connections writing it to viewers) on any threads. The
// block is allocated once and shared by reference: no consumer copies it, and a consumer that falls
// behind holds nothing beyond the object itself.
// - Bytes below available() never change again; bytes above it are being written and must not be
//   read. available() is published with release/acquire ordering.
// - A consumer that has written everything available waits with when_beyond(): its wake-up is
//   posted to its executor once more bytes arrive, the body completes or fails. Each progress step
//   costs one post per executor that has waiters, not one per consumer.
// - A failure can be held (hold_failure()): the consumers then wait on while the body's owner
//   finishes it from elsewhere (an edge continuing a broken-off upstream answer from the next
//   origin) or gives up.
// Thread-safe except write_position()/advance()/fail() (the producer) and hold_failure()/
// finish_with()/fail_now() (the owner, once the producer has stopped).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "sf/core/bytes.h"

namespace sf::http {

class SharedBody {
 public:
  explicit SharedBody(std::size_t size);
  SharedBody(const SharedBody&) = delete;
  SharedBody& operator=(const SharedBody&) = delete;

  std::size_t size() const { return bytes_.size(); }
  std::size_t available() const { return available_.load(std::memory_order_acquire); }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  bool complete() const { return available() == size(); }
  // The start of the block; only [data(), data() + available()) may be read.
  const std::byte* data() const { return bytes_.data(); }
  // The whole block as shared bytes: read it only once complete().
  const Bytes& bytes() const { return bytes_; }

  // Producer: where the next bytes go (data() + available()), then advance() to publish them.
  std::byte* write_position() { return writable_ + available_.load(std::memory_order_relaxed); }
  std::size_t left() const { return size() - available(); }
  void advance(std::size_t n);
  // Producer: the body will not complete (upstream reset, timeout). Waiters are woken, unless a
  // failure is held: then only broken() is set and they wait on.
  void fail();

  // Owner, before the producer can fail: a failure leaves the consumers waiting (see above).
  void hold_failure() { hold_ = true; }
  // A held failure happened: the body goes no further unless finish_with() completes it.
  bool broken() const { return broken_; }
  // Owner of a broken body: `rest` is what follows available(), to the end. false (nothing
  // written) if its size is not exactly left().
  bool finish_with(std::span<const std::byte> rest);
  // Owner: no one will complete the body; waiters are woken with failed().
  void fail_now();

  // Consumer: posts `wake` to `ex` once available() > seen, or the body failed (at once if so now).
  void when_beyond(std::size_t seen, const boost::asio::any_io_executor& ex, std::function<void()> wake) const;

 private:
  void wake_all();

  Bytes bytes_;
  std::byte* writable_ = nullptr;  // the same block, for the producer
  std::atomic<std::size_t> available_{0};
  std::atomic<bool> failed_{false};
  bool hold_ = false;      // producer and owner only, one after the other
  bool broken_ = false;    // likewise
  mutable std::mutex mu_;  // guards waiters_
  mutable std::vector<std::pair<boost::asio::any_io_executor, std::function<void()>>> waiters_;
};

}  // namespace sf::http
