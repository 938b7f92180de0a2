// Coarse deadlines for many operations on one io_context: one timer per context, which runs only
// while something is watched and checks every watched deadline each `kDeadlineTick`. An
// operation that sets and clears a deadline costs two stores and a vector push/pop, where a timer
// armed and cancelled per operation costs timer-queue work and a cancelled handler each time.
// Expiry is late by at most one tick. Use from the context's own thread only (one thread per
// context, as IoPool and the load generator run them).
#pragma once

#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <vector>

namespace sf::net {

constexpr std::chrono::milliseconds kDeadlineTick{50};

class Deadlines;

// Embedded in whatever has a deadline (a connection). `expired()` runs on the context's thread
// once the deadline passed (and the watch has already been removed).
class Watched {
 public:
  virtual ~Watched();
  virtual void expired() = 0;

 private:
  friend class Deadlines;
  Deadlines* owner_ = nullptr;
  std::size_t slot_ = 0;
  std::chrono::steady_clock::time_point deadline_{};
};

class Deadlines : public boost::asio::execution_context::service {
 public:
  using Clock = std::chrono::steady_clock;
  static boost::asio::execution_context::id id;

  explicit Deadlines(boost::asio::execution_context& ctx);
  // The instance of the context that `ex` runs on.
  static Deadlines& of(const boost::asio::any_io_executor& ex);

  // Starts (or moves) `w`'s deadline.
  void watch(Watched& w, Clock::time_point deadline);
  // Stops watching `w` (no-op if not watched).
  void unwatch(Watched& w);
  std::size_t watched() const { return items_.size(); }

 private:
  void shutdown() override;
  void arm();
  void tick();

  boost::asio::steady_timer timer_;
  std::vector<Watched*> items_;
  bool armed_ = false;
  bool shut_ = false;
};

}  // namespace sf::net
