#include "stream.h"

namespace sf::origin {

void Stream::publish(std::shared_ptr<const StreamView> view) {
  view_.store(view, std::memory_order_release);
  std::vector<Waiter> ready;
  {
    std::lock_guard lock(mu_);
    std::erase_if(waiters_, [](const Waiter& w) { return w.gone(); });
    auto it = std::partition(waiters_.begin(), waiters_.end(), [&](const Waiter& w) { return !w.ready(*view); });
    std::move(it, waiters_.end(), std::back_inserter(ready));
    waiters_.erase(it, waiters_.end());
  }
  for (auto& w : ready) w.answer(*view);
}

void Stream::wait(Waiter w) {
  {
    std::lock_guard lock(mu_);
    // Checked under the lock, so a publish between the check and the insert cannot be missed.
    auto v = view_.load(std::memory_order_acquire);
    if (!v || !w.ready(*v)) {
      waiters_.push_back(std::move(w));
      return;
    }
  }
  w.answer(*view_.load(std::memory_order_acquire));
}

std::size_t Stream::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

}  // namespace sf::origin
