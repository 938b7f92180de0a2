// One live stream at the origin: its packager (input thread), the current published view (read
// by any I/O thread through an atomic shared_ptr, no lock), and the requests held for a part or
// playlist that does not exist yet. Waiters are woken by the publish that satisfies them, never
// by a timer.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "packager.h"
#include "window.h"

namespace sf::origin {

class Stream {
 public:
  // `config`: the origin's, with the stream's settings applied (see Packager::reconfigure).
  Stream(std::string name, const Config& config) : name_(name), packager_(std::move(name), config) {}

  // The packager, for the input side only. A takeover can briefly overlap two publishers of one
  // stream (the old one still closing), so input calls take input_mu (uncontended otherwise).
  Packager& packager() { return packager_; }
  std::mutex input_mu;
  std::shared_ptr<const StreamView> view() const { return view_.load(std::memory_order_acquire); }

  // Publishes a new view and answers every waiter it satisfies (input thread).
  void publish(std::shared_ptr<const StreamView> view);

  // A request waiting for the view to reach some state. `ready` says whether a view satisfies it;
  // `answer` sends the response (it runs on the publishing thread and must only post).
  struct Waiter {
    std::function<bool(const StreamView&)> ready;
    std::function<void(const StreamView&)> answer;
    std::function<bool()> gone;  // answered elsewhere (hold timeout): drop it
  };
  // Answers at once if the current view already satisfies it, else holds it.
  void wait(Waiter w);
  std::size_t waiting() const;

  std::atomic<bool> live{false};
  std::atomic<std::int64_t> stopped_at_ms{0};

 private:
  std::string name_;
  Packager packager_;
  std::atomic<std::shared_ptr<const StreamView>> view_;
  mutable std::mutex mu_;  // guards waiters_; taken per publish and per held request
  std::vector<Waiter> waiters_;
};

}  // namespace sf::origin
