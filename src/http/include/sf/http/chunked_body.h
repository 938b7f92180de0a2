// A response body of unknown length that is still arriving (an upstream's chunked answer): the
// pieces received so far, appended by one producer (the HTTP client reading the upstream) and read
// by any number of consumers (server connections writing it to viewers with chunked coding) on any
// threads. Each piece is one shared block (`Bytes`): consumers gather them, none copies them, and
// one that falls behind holds only its position (a piece index).
// - A BodySource: positions are piece indices; read() hands out the pieces after a position,
//   when_beyond() wakes a consumer once there are more, the body ended or failed (one post per
//   executor with waiters per progress step, as SharedBody).
// - end() marks the body complete; fail() marks it unfinishable (upstream reset, stall): consumers
//   then close their connections without the last-chunk, so no viewer takes a truncated body for
//   a whole one.
// - on_append() lets whoever keeps the body account for it as it grows (the edge's cache bound).
// - A failure can be held (hold_failure()), as SharedBody's: consumers wait on while the body's
//   owner continues it from elsewhere (append(), end()) or gives up (fail_now()).
// Thread-safe, but append(), end(), fail(), on_append(), hold_failure() and fail_now() are the
// producer's: one thread calls them (the owner that continues a body is on that thread too).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "sf/core/bytes.h"
#include "sf/http/body_source.h"

namespace sf::http {

class ChunkedBody final : public BodySource {
 public:
  ChunkedBody() = default;
  ChunkedBody(const ChunkedBody&) = delete;
  ChunkedBody& operator=(const ChunkedBody&) = delete;

  // Producer: publishes one more piece (empty pieces are ignored) and wakes the waiting consumers.
  void append(Bytes piece);
  // Producer: the body is complete after the pieces appended so far.
  void end();
  // Producer: the body will not complete. Unless a failure is held: then only broken() is set,
  // and consumers wait on (on_append's callback stays).
  void fail();
  // Before the producer can fail: a failure leaves the consumers waiting (see above).
  void hold_failure() { hold_ = true; }
  // A held failure happened and nothing has been appended or ended since.
  bool broken() const { return broken_; }
  // No one will complete the body: consumers are woken with failed().
  void fail_now();
  // Producer's thread (an OnHead callback, say): `grown` is called with each piece's size once it
  // is published, on the producer's thread, outside the body's lock; dropped at end() or fail(),
  // so what it captures is released when the body finishes either way. Replaces an earlier one.
  void on_append(std::function<void(std::size_t)> grown);

  bool ended() const { return ended_.load(std::memory_order_acquire); }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Bytes received so far.
  std::size_t size() const;
  // The pieces received so far (the whole body once ended()).
  std::vector<Bytes> pieces() const;
  // The pieces received so far copied into one block (for the complete object, once).
  Bytes joined() const;

  Progress read(std::size_t from, std::vector<Bytes>& out) const override;
  void when_beyond(std::size_t from, const boost::asio::any_io_executor& ex, std::function<void()> wake) const override;
  // Posts `wake` to `ex` once the body has ended or failed (at once if it has): for a consumer that
  // wants the whole body, not its pieces (an HTTP/1.0 viewer answered with Content-Length).
  void when_finished(const boost::asio::any_io_executor& ex, std::function<void()> wake) const;

 private:
  void wake_all(std::unique_lock<std::mutex>& lock);
  void take_finish_waiters();  // into waiters_, at the end or failure; caller holds mu_

  mutable std::mutex mu_;  // guards pieces_, size_, waiters_, finish_waiters_
  std::vector<Bytes> pieces_;
  std::size_t size_ = 0;
  std::atomic<bool> ended_{false};
  std::atomic<bool> failed_{false};
  mutable std::vector<std::pair<boost::asio::any_io_executor, std::function<void()>>> waiters_;
  mutable std::vector<std::pair<boost::asio::any_io_executor, std::function<void()>>> finish_waiters_;
  std::function<void(std::size_t)> grown_;  // the producer's thread only: no lock
  bool hold_ = false;                       // likewise
  bool broken_ = false;                     // likewise
};

}  // namespace sf::http
