#include "sf/net/deadlines.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

namespace sf::net {

namespace asio = boost::asio;

boost::asio::execution_context::id Deadlines::id;

Watched::~Watched() {
  if (owner_) owner_->unwatch(*this);
}

Deadlines::Deadlines(asio::execution_context& ctx)
    : asio::execution_context::service(ctx), timer_(static_cast<asio::io_context&>(ctx)) {}

Deadlines& Deadlines::of(const asio::any_io_executor& ex) {
  return asio::use_service<Deadlines>(asio::query(ex, asio::execution::context));
}

void Deadlines::watch(Watched& w, Clock::time_point deadline) {
  w.deadline_ = deadline;
  if (w.owner_ != this) {
    if (w.owner_) w.owner_->unwatch(w);
    w.owner_ = this;
    w.slot_ = items_.size();
    items_.push_back(&w);
  }
  if (!armed_ && !shut_) arm();
}

void Deadlines::unwatch(Watched& w) {
  if (w.owner_ != this) return;
  auto* last = items_.back();
  items_[w.slot_] = last;
  last->slot_ = w.slot_;
  items_.pop_back();
  w.owner_ = nullptr;
}

void Deadlines::arm() {
  armed_ = true;
  timer_.expires_after(kDeadlineTick);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    armed_ = false;
    if (ec || shut_) return;
    tick();
    // Idle contexts keep no timer: run() may return once the last watched operation is done.
    if (!items_.empty()) arm();
  });
}

void Deadlines::tick() {
  auto now = Clock::now();
  for (std::size_t i = 0; i < items_.size();) {
    Watched* w = items_[i];
    if (w->deadline_ > now) {
      ++i;
      continue;
    }
    unwatch(*w);  // moves the last item into slot i: look at it next
    w->expired();
  }
}

void Deadlines::shutdown() {
  shut_ = true;
  for (auto* w : items_) w->owner_ = nullptr;
  items_.clear();
  boost::system::error_code ec;
  timer_.cancel();
}

}  // namespace sf::net
